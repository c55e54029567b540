import Foundation
import NIOCore

/// Finds the descriptor behind a NIO channel. NIO does not expose descriptors, but every socket
/// has a kernel-wide unique cookie (`SO_COOKIE`), readable through the channel and through a
/// descriptor alike: one pass over /proc/self/fd maps cookies to descriptors.
final class SocketDescriptorIndex: @unchecked Sendable {
    // Written only while initializing, then read from several event loops.
    private var descriptors: [UInt64: CInt] = [:]

    /// Indexes every socket descriptor of this process now.
    init() {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return }
        for entry in entries {
            guard let fd = CInt(entry), let cookie = Self.cookie(of: fd) else { continue }
            descriptors[cookie] = fd
        }
    }

    /// The descriptor of `channel`, checked again against its cookie (call on the channel's
    /// event loop, where its descriptor cannot be closed or reused meanwhile).
    func descriptor(of channel: any Channel) -> CInt? {
        guard let cookie = Self.cookie(of: channel), let fd = descriptors[cookie], Self.cookie(of: fd) == cookie else {
            return nil
        }
        return fd
    }

    static func cookie(of fd: CInt) -> UInt64? {
        var cookie: UInt64 = 0
        var length = socklen_t(MemoryLayout<UInt64>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &length) == 0 else { return nil }
        return cookie
    }

    static func cookie(of channel: any Channel) -> UInt64? {
        guard let provider = channel as? any SocketOptionProvider else { return nil }
        let future: EventLoopFuture<UInt64> = provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_COOKIE))
        guard channel.eventLoop.inEventLoop else { return try? future.wait() }
        // In the loop the option is read synchronously: the future is already complete.
        var result: UInt64?
        future.assumeIsolated().whenSuccess { result = $0 }
        return result
    }
}
