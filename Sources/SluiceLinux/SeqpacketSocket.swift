import CSluiceLinux
import Foundation

/// A Unix `SOCK_SEQPACKET` socket: reliable, ordered, and message-framed by the kernel, so one
/// send is one receive. Carries file descriptors with `SCM_RIGHTS`. Calls block; owners run
/// them on their own threads and call `shutdown()` to wake a blocked reader.
public final class SeqpacketSocket: Sendable {
    public let descriptor: CInt

    /// One received record and the descriptors that came with it (owned by the receiver).
    public struct Record: Sendable {
        public var bytes: [UInt8]
        public var descriptors: [CInt]
    }

    private init(descriptor: CInt) {
        self.descriptor = descriptor
    }

    /// Takes ownership of a descriptor handed over by another process.
    public static func adopting(_ descriptor: CInt) -> SeqpacketSocket {
        SeqpacketSocket(descriptor: descriptor)
    }

    deinit {
        close(descriptor)
    }

    /// Listens at `path` with file mode `mode`; a stale socket file is replaced.
    public static func listen(path: String, mode: mode_t = 0o600, backlog: Int32 = 16) throws -> SeqpacketSocket {
        let fd = sluice_seqpacket_socket()
        guard fd >= 0 else { throw SocketError(operation: "socket", path: path, code: -fd) }
        let socket = SeqpacketSocket(descriptor: fd)
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        unlink(path)
        // Create the file with the final mode from the start: no window where others may connect.
        let previous = umask(~mode & 0o777)
        let rc = sluice_unix_bind_listen(fd, path, backlog)
        umask(previous)
        guard rc == 0 else { throw SocketError(operation: "bind", path: path, code: -rc) }
        chmod(path, mode)
        return socket
    }

    public static func connect(path: String) throws -> SeqpacketSocket {
        let fd = sluice_seqpacket_socket()
        guard fd >= 0 else { throw SocketError(operation: "socket", path: path, code: -fd) }
        let socket = SeqpacketSocket(descriptor: fd)
        let rc = sluice_unix_connect(fd, path)
        guard rc == 0 else { throw SocketError(operation: "connect", path: path, code: -rc) }
        return socket
    }

    /// A connected pair, for tests and in-process links.
    public static func pair() throws -> (SeqpacketSocket, SeqpacketSocket) {
        var fds: [CInt] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw SocketError(operation: "socketpair", path: nil, code: errno)
        }
        return (SeqpacketSocket(descriptor: fds[0]), SeqpacketSocket(descriptor: fds[1]))
    }

    /// Waits for the next connection; throws once the socket is shut down.
    public func accept() throws -> SeqpacketSocket {
        let fd = sluice_accept(descriptor)
        guard fd >= 0 else { throw SocketError(operation: "accept", path: nil, code: -fd) }
        return SeqpacketSocket(descriptor: fd)
    }

    /// A pending connection, or nil when none waits. For a listening socket two processes share
    /// during a hot upgrade: the socket is non-blocking (a status flag both processes see), so
    /// the process that loses the race for a connection is not left blocked in `accept`.
    public func acceptIfPending() throws -> SeqpacketSocket? {
        let fd = sluice_accept(descriptor)
        if fd == -EAGAIN || fd == -EWOULDBLOCK { return nil }
        guard fd >= 0 else { throw SocketError(operation: "accept", path: nil, code: -fd) }
        // Accepted sockets do not inherit O_NONBLOCK; records on them are read blocking.
        return SeqpacketSocket(descriptor: fd)
    }

    /// Makes calls on this socket return instead of blocking.
    public func setNonBlocking() {
        let flags = fcntl(descriptor, F_GETFL)
        _ = fcntl(descriptor, F_SETFL, flags | O_NONBLOCK)
    }

    /// Sends one record. Descriptors are duplicated into the peer; the caller keeps its own.
    public func send(_ bytes: [UInt8], descriptors: [CInt] = []) throws {
        let sent = bytes.withUnsafeBytes { buffer in
            descriptors.withUnsafeBufferPointer { fds in
                sluice_send_record(descriptor, buffer.baseAddress, buffer.count, fds.baseAddress, CInt(fds.count))
            }
        }
        guard sent >= 0 else { throw SocketError(operation: "send", path: nil, code: CInt(-sent)) }
        guard sent == bytes.count else { throw SocketError(operation: "send (short)", path: nil, code: EMSGSIZE) }
    }

    /// Receives one record; nil when the peer closed. A record larger than `maxBytes`, or with
    /// more than `maxDescriptors` descriptors, is a framing error, never silently cut.
    public func receive(maxBytes: Int, maxDescriptors: Int = 4) throws -> Record? {
        var buffer = [UInt8](repeating: 0, count: maxBytes + 1)
        var fds = [CInt](repeating: -1, count: max(maxDescriptors, 1))
        var fdCount: CInt = 0
        var truncated: CInt = 0
        let received = buffer.withUnsafeMutableBytes { raw in
            fds.withUnsafeMutableBufferPointer { fdBuffer in
                sluice_receive_record(
                    descriptor, raw.baseAddress, raw.count, fdBuffer.baseAddress, CInt(maxDescriptors), &fdCount, &truncated)
            }
        }
        guard received >= 0 else { throw SocketError(operation: "receive", path: nil, code: CInt(-received)) }
        let descriptors = Array(fds.prefix(Int(fdCount)))
        if truncated != 0 || received > maxBytes {
            for fd in descriptors { close(fd) }
            throw SocketError(operation: "receive (record larger than \(maxBytes) bytes or too many descriptors)", path: nil, code: EMSGSIZE)
        }
        if received == 0 && descriptors.isEmpty { return nil }
        return Record(bytes: Array(buffer.prefix(received)), descriptors: descriptors)
    }

    /// Waits up to `timeout` for a record or the peer's close; false on timeout.
    public func waitReadable(timeout: Duration) -> Bool {
        var pollDescriptor = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        let (seconds, attoseconds) = timeout.components
        let milliseconds = Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000)
        while true {
            let rc = poll(&pollDescriptor, 1, milliseconds)
            if rc < 0, errno == EINTR { continue }
            return rc > 0
        }
    }

    /// The connected peer's process credentials, as the kernel recorded them at connect time.
    public func peerCredentials() throws -> PeerCredentials {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
        let rc = sluice_peer_credentials(descriptor, &pid, &uid, &gid)
        guard rc == 0 else { throw SocketError(operation: "SO_PEERCRED", path: nil, code: -rc) }
        return PeerCredentials(pid: pid, uid: uid, gid: gid)
    }

    /// Wakes any thread blocked in `accept` or `receive` on this socket.
    public func shutdown() {
        _ = Glibc.shutdown(descriptor, Int32(SHUT_RDWR))
    }
}

/// Who is on the other end of a Unix socket.
public struct PeerCredentials: Sendable, Equatable {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32

    /// Root, or the same user as this process: the only peers privileged sockets accept.
    public var isTrusted: Bool { uid == 0 || uid == getuid() }
}

/// A failed socket operation, naming it.
public struct SocketError: Error, CustomStringConvertible {
    public var operation: String
    public var path: String?
    public var code: CInt

    public var description: String {
        let target = path.map { " \($0)" } ?? ""
        return "\(operation)\(target): \(String(cString: strerror(code)))"
    }
}
