import Foundation
import NIOCore
import SluiceModel

/// Recovers where a redirected connection was originally going. REDIRECT rewrites the
/// destination to the proxy's listener; conntrack remembers the original, which the kernel
/// returns through `SO_ORIGINAL_DST` (IPv4) or `IP6T_SO_ORIGINAL_DST` (IPv6).
enum OriginalDestination {
    private static let soOriginalDestination: SocketOptionName = 80  // same value for both families
    private static let solIPv6: SocketOptionLevel = 41

    /// The original destination, or nil when the connection was not redirected (no conntrack NAT).
    static func lookup(_ channel: any Channel, localAddress: SocketEndpoint) -> EventLoopFuture<SocketEndpoint?> {
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeSucceededFuture(nil)
        }
        if case .v6(let raw)? = channel.localAddress, !IPAddress(in6: raw.address.sin6_addr).unmappingIPv4.isV4 {
            return provider.unsafeGetSocketOption(level: solIPv6, name: soOriginalDestination)
                .map { (address: sockaddr_in6) -> SocketEndpoint? in
                    SocketEndpoint(address: IPAddress(in6: address.sin6_addr), port: UInt16(bigEndian: address.sin6_port))
                }
                .recover { _ in nil }
        }
        // IPv4, including IPv4 connections accepted on a dual-stack IPv6 socket: conntrack keeps
        // them in its IPv4 table.
        return provider.unsafeGetSocketOption(level: SocketOptionLevel(IPPROTO_IP), name: soOriginalDestination)
            .map { (address: sockaddr_in) -> SocketEndpoint? in
                SocketEndpoint(address: .v4(UInt32(bigEndian: address.sin_addr.s_addr)), port: UInt16(bigEndian: address.sin_port))
            }
            .recover { _ in nil }
    }
}
