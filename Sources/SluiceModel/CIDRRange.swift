/// An address prefix such as `10.0.0.0/8` or `fd00::/64`.
public struct CIDRRange: Hashable, Sendable, CustomStringConvertible, Codable {
    /// The network address, with host bits cleared.
    public let network: IPAddress
    public let prefixLength: Int

    /// Fails when the prefix length does not fit the address family.
    public init?(address: IPAddress, prefixLength: Int) {
        guard prefixLength >= 0, prefixLength <= address.bitWidth else { return nil }
        self.network = address.masked(to: prefixLength)
        self.prefixLength = prefixLength
    }

    /// Parses `a.b.c.d/n`, `x::y/n`, or a bare address (a host route).
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = IPAddress(String(parts[0])) else { return nil }
        var length = address.bitWidth
        if parts.count == 2 {
            guard let parsed = Int(parts[1]) else { return nil }
            length = parsed
        }
        self.init(address: address, prefixLength: length)
    }

    public func contains(_ address: IPAddress) -> Bool {
        let candidate = address.unmappingIPv4
        guard candidate.isV4 == network.isV4 else { return false }
        return candidate.masked(to: prefixLength) == network
    }

    public var description: String { "\(network)/\(prefixLength)" }
}

extension CIDRRange {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let range = CIDRRange(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a CIDR range: \(text)"))
        }
        self = range
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
