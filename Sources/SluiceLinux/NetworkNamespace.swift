import CSluiceLinux
import Foundation

/// A network namespace held open by file descriptor. Sockets belong to the namespace of the
/// thread that creates them, so work that must create sockets "inside" a workload runs in
/// `perform`, which moves the calling thread in and back out.
public final class NetworkNamespace: Sendable, CustomStringConvertible {
    public let descriptor: CInt
    /// Device and inode of the namespace: equal identities mean the same namespace.
    public let identity: Identity

    public struct Identity: Hashable, Sendable, Codable, CustomStringConvertible {
        public var device: UInt64
        public var inode: UInt64

        public init(device: UInt64, inode: UInt64) {
            self.device = device
            self.inode = inode
        }

        public var description: String { "net:[\(inode)]" }
    }

    /// The namespace the process was started in; opened once, before any thread switches.
    public static let home: NetworkNamespace = {
        do {
            return try NetworkNamespace(path: "/proc/self/ns/net")
        } catch {
            fatalError("cannot open the proxy's own network namespace: \(error)")
        }
    }()

    /// Opens the namespace at `path` (`/run/netns/NAME`, `/proc/PID/ns/net`).
    public convenience init(path: String) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw NamespaceError.open(path: path, errno: errno) }
        try self.init(takingOwnershipOf: descriptor)
    }

    /// Adopts a descriptor received from the agent; it is closed when this object goes away.
    public init(takingOwnershipOf descriptor: CInt) throws {
        var device: UInt64 = 0
        var inode: UInt64 = 0
        let rc = sluice_file_identity(descriptor, &device, &inode)
        guard rc == 0 else {
            close(descriptor)
            throw NamespaceError.inspect(errno: -rc)
        }
        self.descriptor = descriptor
        self.identity = Identity(device: device, inode: inode)
    }

    deinit {
        close(descriptor)
    }

    public var description: String { identity.description }

    /// Runs `body` on the calling thread while it is inside this namespace, then returns the
    /// thread to the proxy's own namespace. With `staying`, the thread stays until some later
    /// `perform` needs another namespace: for event-loop threads, whose every socket is created
    /// through `perform`, this saves two setns calls per connection when one workload connects
    /// repeatedly.
    public func perform<Result>(staying: Bool = false, _ body: () throws -> Result) throws -> Result {
        try enter()
        defer {
            if !staying {
                // A thread left in a workload's namespace would create later sockets there;
                // there is no safe way to continue after that.
                let home = NetworkNamespace.home
                let back = sluice_switch_netns(home.descriptor, home.identity.inode, home.identity.inode)
                precondition(back == 0, "cannot return to the proxy's own network namespace (errno \(-back))")
            }
        }
        return try body()
    }

    private func enter() throws {
        let rc = sluice_switch_netns(descriptor, identity.inode, NetworkNamespace.home.identity.inode)
        guard rc == 0 else { throw NamespaceError.enter(errno: -rc) }
    }
}

extension NetworkNamespace {
    /// The addresses of the namespace's interfaces, loopback and IPv6 link-local excluded.
    public func interfaceAddresses() throws -> [String] {
        try perform {
            var list: UnsafeMutablePointer<ifaddrs>?
            guard getifaddrs(&list) == 0 else { return [] }
            defer { freeifaddrs(list) }
            var addresses: [String] = []
            var cursor = list
            while let entry = cursor {
                cursor = entry.pointee.ifa_next
                guard let address = entry.pointee.ifa_addr else { continue }
                var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
                let family = Int32(address.pointee.sa_family)
                guard family == AF_INET || family == AF_INET6 else { continue }
                let length = socklen_t(family == AF_INET ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size)
                guard getnameinfo(address, length, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 else { continue }
                let text = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if text == "127.0.0.1" || text == "::1" || text.hasPrefix("fe80") || text.hasPrefix("127.") { continue }
                if !addresses.contains(text) { addresses.append(text) }
            }
            return addresses
        }
    }
}

/// Failures entering or opening a namespace.
public enum NamespaceError: Error, CustomStringConvertible {
    case open(path: String, errno: CInt)
    case inspect(errno: CInt)
    case enter(errno: CInt)

    public var description: String {
        switch self {
        case .open(let path, let code): return "cannot open network namespace \(path): \(String(cString: strerror(code)))"
        case .inspect(let code): return "cannot inspect namespace descriptor: \(String(cString: strerror(code)))"
        case .enter(let code): return "cannot enter network namespace: \(String(cString: strerror(code)))"
        }
    }
}
