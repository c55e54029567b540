#if canImport(Glibc)
import Glibc
#endif

/// The admin's Unix listening socket, created here rather than by NIO: NIO unlinks the path
/// of a Unix server socket it created when that socket closes, which during a hot upgrade would
/// delete the socket file the new process has already put in its place.
struct UnixListenSocket {
    let descriptor: CInt
    let file: SocketFile

    /// Replaces a stale socket file, binds, applies `mode` and listens.
    init(path: String, mode: UInt32, backlog: CInt = 128) throws {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw AdminSocketError(path: path, operation: "use as a socket path (empty or too long)", errno: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        var existing = stat()
        if lstat(path, &existing) == 0 {
            // Only a socket is taken to be stale; any other file at the path is a mistake to report.
            guard existing.st_mode & S_IFMT == S_IFSOCK else {
                throw AdminSocketError(path: path, operation: "replace (not a socket)", errno: EEXIST)
            }
            unlink(path)
        }
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw AdminSocketError(path: path, operation: "create socket for", errno: errno) }
        func fail(_ operation: String, bound: Bool) -> AdminSocketError {
            let error = AdminSocketError(path: path, operation: operation, errno: errno)
            close(descriptor)
            if bound { unlink(path) }
            return error
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0 else { throw fail("bind", bound: false) }
        // The mode is applied right after bind; in that short window POSTs are still guarded
        // by the SO_PEERCRED check.
        guard chmod(path, mode_t(mode == 0 ? 0o600 : mode)) == 0 else { throw fail("set the mode of", bound: true) }
        guard listen(descriptor, backlog) == 0 else { throw fail("listen on", bound: true) }
        guard let file = SocketFile(path: path) else { throw fail("inspect", bound: true) }
        self.descriptor = descriptor
        self.file = file
    }
}

/// The socket file this server bound, by path and inode. It is removed only while it is still
/// ours; checked before our socket closes, the inode cannot have been reused by a replacement.
struct SocketFile: Sendable {
    var path: String
    var device: UInt64
    var inode: UInt64

    init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        self.path = path
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
    }

    func removeIfUnchanged() {
        guard let current = SocketFile(path: path), current.device == device, current.inode == inode else { return }
        unlink(path)
    }
}

/// The admin Unix socket could not be set up.
struct AdminSocketError: Error, CustomStringConvertible {
    var path: String
    var operation: String
    var errno: Int32

    var description: String { "cannot \(operation) admin socket \(path): \(String(cString: strerror(errno)))" }
}
