#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import SluiceProxy
import SluiceModel

/// Who may change server state over the admin API (the ground rule that privileged sockets check
/// their peer). Reading is open to anyone who can reach the address; POSTs are not.
enum PeerCheck {
    /// A TCP peer is trusted only from loopback (127.0.0.0/8, ::1, ::ffff:127.x.x.x).
    static func isPrivileged(tcpPeer address: SocketAddress?) -> Bool {
        guard let endpoint = SocketEndpoint(address) else { return false }
        return endpoint.address.isLoopback
    }

    /// A Unix-socket peer is trusted when its `SO_PEERCRED` uid is root or our own uid.
    static func isPrivileged(uid: UInt32) -> Bool {
        uid == 0 || uid == UInt32(getuid())
    }

    /// Linux's `struct ucred` (declared by glibc only under `_GNU_SOURCE`, so mirrored here).
    struct Credentials: Sendable {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
    }

    /// Whether an accepted Unix-socket connection's peer is privileged; false when its credentials cannot be read.
    static func unixPeerPrivileged(_ channel: any Channel) -> EventLoopFuture<Bool> {
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeSucceededFuture(false)
        }
        let future: EventLoopFuture<Credentials> = provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
        return future.map { isPrivileged(uid: $0.uid) }.recover { _ in false }
    }
}
