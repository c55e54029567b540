/// Which capture listener of an enrolled workload a listener is.
public enum CaptureRole: String, Sendable, Codable, CaseIterable {
    /// Receives the workload's redirected outgoing connections.
    case outbound
    /// Receives connections redirected on their way into the workload.
    case inbound
}

/// An address a listener binds, with the dual-stack choice Envoy calls `ipv4_compat`.
public struct ListenerAddress: Hashable, Sendable, CustomStringConvertible {
    public var endpoint: SocketEndpoint
    /// For an IPv6 wildcard address: also accept IPv4 connections (as mapped addresses).
    public var ipv4Compatible: Bool

    public init(endpoint: SocketEndpoint, ipv4Compatible: Bool = false) {
        self.endpoint = endpoint
        self.ipv4Compatible = ipv4Compatible
    }

    public var description: String { endpoint.description }
}

/// Listener filters run before a filter chain is chosen.
public enum ListenerFilter: Hashable, Sendable {
    /// `envoy.filters.listener.original_dst`: restores the pre-redirect destination.
    case originalDestination
}

/// A listener: where connections arrive and how a filter chain is chosen for each.
public struct ListenerConfig: Hashable, Sendable {
    public var name: String
    /// The primary address followed by `additional_addresses`.
    public var addresses: [ListenerAddress]
    /// `false` for listeners that only receive connections handed off by `use_original_dst`.
    public var bindToPort: Bool
    public var useOriginalDestination: Bool
    public var listenerFilters: [ListenerFilter]
    public var filterChains: [FilterChain]
    public var defaultFilterChain: FilterChain?
    /// Bound on bytes buffered per direction of each connection (Envoy's soft limit).
    public var perConnectionBufferLimitBytes: Int
    /// Set for capture listeners, which are bound inside every enrolled workload's namespace.
    public var capture: CaptureRole?
    /// Prefix of this listener's stats, `listener.<statName>.`.
    public var statName: String

    public init(
        name: String,
        addresses: [ListenerAddress],
        bindToPort: Bool = true,
        useOriginalDestination: Bool = false,
        listenerFilters: [ListenerFilter] = [],
        filterChains: [FilterChain] = [],
        defaultFilterChain: FilterChain? = nil,
        perConnectionBufferLimitBytes: Int = 1 << 20,
        capture: CaptureRole? = nil,
        statName: String? = nil
    ) {
        self.name = name
        self.addresses = addresses
        self.bindToPort = bindToPort
        self.useOriginalDestination = useOriginalDestination
        self.listenerFilters = listenerFilters
        self.filterChains = filterChains
        self.defaultFilterChain = defaultFilterChain
        self.perConnectionBufferLimitBytes = perConnectionBufferLimitBytes
        self.capture = capture
        self.statName = statName ?? Self.statName(for: addresses.first?.endpoint)
    }

    /// Envoy's default listener stat name: the address with `:` replaced, e.g. `0.0.0.0_15001`.
    public static func statName(for endpoint: SocketEndpoint?) -> String {
        guard let endpoint else { return "unknown" }
        return "\(endpoint.address)_\(endpoint.port)".replacingOccurrences(of: ":", with: "_")
    }

    /// The port of the primary address.
    public var port: UInt16 { addresses.first?.endpoint.port ?? 0 }

    /// Whether the listener needs the original destination of each connection.
    public var restoresOriginalDestination: Bool {
        useOriginalDestination || listenerFilters.contains(.originalDestination)
    }
}

/// A filter chain: the match that selects it and the network filters that handle the connection.
public struct FilterChain: Hashable, Sendable {
    public var name: String
    public var match: FilterChainMatch
    public var filters: [NetworkFilter]

    public init(name: String = "", match: FilterChainMatch = FilterChainMatch(), filters: [NetworkFilter]) {
        self.name = name
        self.match = match
        self.filters = filters
    }
}

/// The terminal network filter of a chain.
public enum NetworkFilter: Hashable, Sendable {
    case tcpProxy(TCPProxyConfig)
    case httpConnectionManager(HTTPConnectionManagerConfig)
}

/// The subset of Envoy's `FilterChainMatch` that applies to plain TCP connections.
public struct FilterChainMatch: Hashable, Sendable {
    public var destinationPort: UInt16?
    public var prefixRanges: [CIDRRange]
    /// `raw_buffer` (always true without a TLS inspector) or nil.
    public var transportProtocol: String?
    public var sourceType: SourceType
    public var sourcePrefixRanges: [CIDRRange]
    public var directSourcePrefixRanges: [CIDRRange]
    public var sourcePorts: [UInt16]

    /// Envoy's `ConnectionSourceType`.
    public enum SourceType: Hashable, Sendable {
        case any
        /// The source address is an address of this host (same namespace).
        case sameIPOrLoopback
        case external
    }

    public init(
        destinationPort: UInt16? = nil,
        prefixRanges: [CIDRRange] = [],
        transportProtocol: String? = nil,
        sourceType: SourceType = .any,
        sourcePrefixRanges: [CIDRRange] = [],
        directSourcePrefixRanges: [CIDRRange] = [],
        sourcePorts: [UInt16] = []
    ) {
        self.destinationPort = destinationPort
        self.prefixRanges = prefixRanges
        self.transportProtocol = transportProtocol
        self.sourceType = sourceType
        self.sourcePrefixRanges = sourcePrefixRanges
        self.directSourcePrefixRanges = directSourcePrefixRanges
        self.sourcePorts = sourcePorts
    }
}
