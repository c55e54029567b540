import SluiceModel

/// What a connection offers to filter-chain matching.
public struct ConnectionMetadata: Sendable {
    /// Local address after the original destination was restored.
    public var destination: SocketEndpoint
    public var source: SocketEndpoint
    /// The address the TCP connection really came from (same as `source` without PROXY protocol).
    public var directSource: SocketEndpoint

    public init(destination: SocketEndpoint, source: SocketEndpoint, directSource: SocketEndpoint? = nil) {
        self.destination = destination
        self.source = source
        self.directSource = directSource ?? source
    }
}

/// Envoy's filter-chain selection: criteria are applied in a fixed order (destination port,
/// destination IP, transport protocol, direct source IP, source type, source IP, source port),
/// and at each step only the most specific candidates survive, with no backtracking to less
/// specific chains when a later step fails. If nothing survives, the default chain (if any) wins.
public struct FilterChainSelector: Sendable {
    private let matches: [FilterChainMatch]
    private let hasDefault: Bool
    /// The common case of a single chain that matches everything: no per-connection work.
    private let matchesEverything: Bool

    /// The chain a connection gets.
    public enum Selection: Equatable, Sendable {
        /// Index into the listener's `filter_chains`.
        case chain(Int)
        case defaultChain
    }

    public init(chains: [FilterChain], hasDefaultChain: Bool) {
        self.matches = chains.map(\.match)
        self.hasDefault = hasDefaultChain
        self.matchesEverything = chains.count == 1 && chains[0].match == FilterChainMatch()
    }

    public func select(_ connection: ConnectionMetadata) -> Selection? {
        if matchesEverything { return .chain(0) }
        var candidates = Array(matches.indices)
        candidates = narrow(candidates, by: { $0.destinationPort }, value: connection.destination.port)
        candidates = longestPrefix(candidates, ranges: { $0.prefixRanges }, address: connection.destination.address)
        candidates = narrow(candidates, by: { $0.transportProtocol }, value: "raw_buffer")
        candidates = longestPrefix(candidates, ranges: { $0.directSourcePrefixRanges }, address: connection.directSource.address)
        candidates = sourceType(candidates, connection: connection)
        candidates = longestPrefix(candidates, ranges: { $0.sourcePrefixRanges }, address: connection.source.address)
        candidates = sourcePort(candidates, port: connection.source.port)
        if let first = candidates.first { return .chain(first) }
        return hasDefault ? .defaultChain : nil
    }

    /// Candidates whose criterion equals `value`; failing that, those without the criterion.
    private func narrow<Value: Equatable>(
        _ candidates: [Int], by criterion: (FilterChainMatch) -> Value?, value: Value
    ) -> [Int] {
        let exact = candidates.filter { criterion(matches[$0]) == value }
        return exact.isEmpty ? candidates.filter { criterion(matches[$0]) == nil } : exact
    }

    private func longestPrefix(
        _ candidates: [Int], ranges: (FilterChainMatch) -> [CIDRRange], address: IPAddress
    ) -> [Int] {
        var best = -1
        var matched: [Int] = []
        for index in candidates {
            let length = ranges(matches[index]).filter { $0.contains(address) }.map(\.prefixLength).max() ?? -1
            if length > best {
                best = length
                matched = [index]
            } else if length == best, length >= 0 {
                matched.append(index)
            }
        }
        return best >= 0 ? matched : candidates.filter { ranges(matches[$0]).isEmpty }
    }

    private func sourceType(_ candidates: [Int], connection: ConnectionMetadata) -> [Int] {
        let source = connection.source.address.unmappingIPv4
        let local = source.isLoopback || source == connection.destination.address.unmappingIPv4
        let wanted: FilterChainMatch.SourceType = local ? .sameIPOrLoopback : .external
        let exact = candidates.filter { matches[$0].sourceType == wanted }
        return exact.isEmpty ? candidates.filter { matches[$0].sourceType == .any } : exact
    }

    private func sourcePort(_ candidates: [Int], port: UInt16) -> [Int] {
        let exact = candidates.filter { matches[$0].sourcePorts.contains(port) }
        return exact.isEmpty ? candidates.filter { matches[$0].sourcePorts.isEmpty } : exact
    }
}
