import Foundation
import NIOConcurrencyHelpers
import SluiceLinux
import SluiceModel

/// A listening socket handed over by the previous proxy process: where it lives (namespace and
/// address) and its descriptor, which this process now owns.
public struct InheritedListener: Sendable, Hashable {
    public var namespace: NetworkNamespace.Identity
    public var address: SocketEndpoint
    public var descriptor: CInt

    public init(namespace: NetworkNamespace.Identity, address: SocketEndpoint, descriptor: CInt) {
        self.namespace = namespace
        self.address = address
        self.descriptor = descriptor
    }
}

/// The listening sockets a new process inherited, claimed one by one as its configuration
/// binds listeners: a listener whose namespace, address and socket type match takes the inherited socket
/// (and its accept queue) instead of binding a new one, so no connection is refused across
/// the upgrade. What nothing claims is closed by `closeUnclaimed`.
public final class InheritedSockets: Sendable {
    private struct Key: Hashable {
        var namespace: NetworkNamespace.Identity
        var address: SocketEndpoint
    }

    private let available: NIOLockedValueBox<[Key: CInt]>
    private let claimedCount = NIOLockedValueBox(0)
    /// Descriptors refused because they are not listening TCP sockets of the named address.
    public let rejected: [String]

    public init(_ listeners: [InheritedListener]) {
        var available: [Key: CInt] = [:]
        var rejected: [String] = []
        for listener in listeners {
            let key = Key(namespace: listener.namespace, address: listener.address)
            guard Self.isListeningStream(listener.descriptor, family: listener.address.address.isV4 ? AF_INET : AF_INET6) else {
                rejected.append("\(listener.address) in \(listener.namespace)")
                close(listener.descriptor)
                continue
            }
            if let duplicate = available[key] { close(duplicate) }
            available[key] = listener.descriptor
        }
        self.available = NIOLockedValueBox(available)
        self.rejected = rejected
    }

    /// The type check of the match: a listening stream socket of the address's family.
    static func isListeningStream(_ fd: CInt, family: Int32) -> Bool {
        func option(_ name: Int32) -> Int32? {
            var value: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            return getsockopt(fd, SOL_SOCKET, name, &value, &length) == 0 ? value : nil
        }
        return option(SO_TYPE) == Int32(SOCK_STREAM.rawValue) && option(SO_ACCEPTCONN) == 1 && option(SO_DOMAIN) == family
    }

    /// The inherited socket listening on `address` inside `namespace`, now owned by the caller.
    func claim(namespace: NetworkNamespace.Identity, address: SocketEndpoint) -> CInt? {
        let fd = available.withLockedValue { $0.removeValue(forKey: Key(namespace: namespace, address: address)) }
        if fd != nil { claimedCount.withLockedValue { $0 += 1 } }
        return fd
    }

    /// How many inherited sockets a listener took over.
    public var claimed: Int { claimedCount.withLockedValue { $0 } }

    /// Closes every inherited socket no listener claimed; returns their addresses.
    @discardableResult
    public func closeUnclaimed() -> [String] {
        let rest = available.withLockedValue { available in
            defer { available = [:] }
            return available
        }
        for fd in rest.values { close(fd) }
        return rest.keys.map { "\($0.address) in \($0.namespace)" }.sorted()
    }
}
