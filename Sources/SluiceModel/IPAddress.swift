import Foundation

/// An IPv4 or IPv6 address, stored as integers so comparisons and prefix checks are cheap.
public enum IPAddress: Hashable, Sendable, CustomStringConvertible {
    /// IPv4 address in host byte order.
    case v4(UInt32)
    /// IPv6 address as two 64-bit halves in host byte order.
    case v6(high: UInt64, low: UInt64)

    /// Parses dotted-quad IPv4 or textual IPv6 (an optional `%zone` suffix is rejected).
    public init?(_ text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self = .v4(UInt32(bigEndian: v4.s_addr))
            return
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        self = IPAddress(in6: v6)
    }

    /// Builds an address from raw network-order IPv6 bytes.
    public init(in6 address: in6_addr) {
        let bytes = withUnsafeBytes(of: address) { Array($0) }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for index in 0..<8 { high = high << 8 | UInt64(bytes[index]) }
        for index in 8..<16 { low = low << 8 | UInt64(bytes[index]) }
        self = .v6(high: high, low: low)
    }

    public var isV4: Bool {
        if case .v4 = self { return true }
        return false
    }

    /// Bit width of the address family.
    public var bitWidth: Int { isV4 ? 32 : 128 }

    /// `127.0.0.0/8` or `::1`.
    public var isLoopback: Bool {
        switch self {
        case .v4(let value): return value >> 24 == 127
        case .v6(let high, let low): return high == 0 && low == 1
        }
    }

    /// `0.0.0.0` or `::`.
    public var isUnspecified: Bool {
        switch self {
        case .v4(let value): return value == 0
        case .v6(let high, let low): return high == 0 && low == 0
        }
    }

    /// The IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), else `self`.
    public var unmappingIPv4: IPAddress {
        if case .v6(let high, let low) = self, high == 0, low >> 32 == 0xffff {
            return .v4(UInt32(truncatingIfNeeded: low))
        }
        return self
    }

    /// Network-order bytes of an IPv6 address (for IPv4, the mapped form).
    public var in6: in6_addr {
        let (high, low): (UInt64, UInt64)
        switch self {
        case .v4(let value): (high, low) = (0, 0xffff_0000_0000 | UInt64(value))
        case .v6(let h, let l): (high, low) = (h, l)
        }
        var address = in6_addr()
        withUnsafeMutableBytes(of: &address) { raw in
            for index in 0..<8 { raw[index] = UInt8(truncatingIfNeeded: high >> (56 - 8 * index)) }
            for index in 0..<8 { raw[8 + index] = UInt8(truncatingIfNeeded: low >> (56 - 8 * index)) }
        }
        return address
    }

    public var description: String {
        switch self {
        case .v4(let value):
            return "\(value >> 24).\(value >> 16 & 0xff).\(value >> 8 & 0xff).\(value & 0xff)"
        case .v6:
            var address = in6
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count))
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    /// The address with every bit after `prefixLength` cleared.
    public func masked(to prefixLength: Int) -> IPAddress {
        switch self {
        case .v4(let value):
            let mask: UInt32 = prefixLength == 0 ? 0 : ~UInt32(0) << (32 - prefixLength)
            return .v4(value & mask)
        case .v6(let high, let low):
            let highMask: UInt64 =
                prefixLength >= 64 ? ~0 : (prefixLength == 0 ? 0 : ~UInt64(0) << (64 - prefixLength))
            let lowMask: UInt64 =
                prefixLength <= 64 ? 0 : (prefixLength == 128 ? ~0 : ~UInt64(0) << (128 - prefixLength))
            return .v6(high: high & highMask, low: low & lowMask)
        }
    }
}
