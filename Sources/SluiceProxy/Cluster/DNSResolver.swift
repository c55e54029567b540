import Foundation
import SluiceModel

/// Blocking name resolution for STRICT_DNS clusters; run off the event loops.
enum DNSResolver {
    /// Every address `getaddrinfo` returns for `name`, filtered by the lookup family.
    static func resolve(_ name: String, port: UInt16, family: DNSLookupFamily) throws -> [SocketEndpoint] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        switch family {
        case .v4Only: hints.ai_family = AF_INET
        case .v6Only: hints.ai_family = AF_INET6
        case .auto, .v4Preferred, .all: hints.ai_family = AF_UNSPEC
        }
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(name, String(port), &hints, &result)
        guard rc == 0 else { throw DNSResolutionError(name: name, message: String(cString: gai_strerror(rc))) }
        defer { freeaddrinfo(result) }
        var addresses: [SocketEndpoint] = []
        var cursor = result
        while let entry = cursor {
            if let sockaddr = entry.pointee.ai_addr {
                switch Int32(sockaddr.pointee.sa_family) {
                case AF_INET:
                    let v4 = UnsafeRawPointer(sockaddr).load(as: sockaddr_in.self)
                    addresses.append(SocketEndpoint(address: .v4(UInt32(bigEndian: v4.sin_addr.s_addr)), port: port))
                case AF_INET6:
                    let v6 = UnsafeRawPointer(sockaddr).load(as: sockaddr_in6.self)
                    addresses.append(SocketEndpoint(address: IPAddress(in6: v6.sin6_addr), port: port))
                default:
                    break
                }
            }
            cursor = entry.pointee.ai_next
        }
        var unique: [SocketEndpoint] = []
        for address in addresses where !unique.contains(address) { unique.append(address) }
        switch family {
        case .auto:
            // Envoy's AUTO prefers IPv6 when any is returned, else IPv4.
            let v6 = unique.filter { !$0.address.isV4 }
            return v6.isEmpty ? unique : v6
        case .v4Preferred:
            let v4 = unique.filter(\.address.isV4)
            return v4.isEmpty ? unique : v4
        default:
            return unique
        }
    }
}

/// A name that did not resolve.
struct DNSResolutionError: Error, CustomStringConvertible {
    var name: String
    var message: String
    var description: String { "cannot resolve \(name): \(message)" }
}
