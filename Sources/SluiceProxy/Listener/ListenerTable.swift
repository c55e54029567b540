import Logging
import NIOConcurrencyHelpers
import SluiceModel

/// Envoy's `listener.<address>.*` stats.
struct ListenerStats: Sendable {
    let downstreamConnectionsTotal: Counter
    let downstreamConnectionsActive: Gauge
    let downstreamConnectionsDestroyed: Counter
    let noFilterChainMatch: Counter

    init(statName: String, store: StatsStore) {
        downstreamConnectionsTotal = store.counter(.listener(statName, "downstream_cx_total"))
        downstreamConnectionsActive = store.gauge(.listener(statName, "downstream_cx_active"))
        downstreamConnectionsDestroyed = store.counter(.listener(statName, "downstream_cx_destroy"))
        noFilterChainMatch = store.counter(.listener(statName, "no_filter_chain_match"))
    }
}

/// What handles a connection once its filter chain is chosen.
enum ChainTerminal: Sendable {
    case tcpProxy(TCPProxyRoute)
    case http(CompiledHTTPConnectionManager)
    /// The chain's configuration could not be prepared (e.g. an invalid regex); connections are closed.
    case invalid(String)
}

/// A listener's configuration prepared for the data path: chain selection and the routes and
/// stats of its chains are built once, not per connection.
final class CompiledListener: Sendable {
    let config: ListenerConfig
    let stats: ListenerStats
    private let selector: FilterChainSelector
    private let chainTerminals: [ChainTerminal?]
    private let defaultTerminal: ChainTerminal?

    init(config: ListenerConfig, store: StatsStore, http: HTTPRuntime, logger: Logger) {
        self.config = config
        self.stats = ListenerStats(statName: config.statName, store: store)
        self.selector = FilterChainSelector(chains: config.filterChains, hasDefaultChain: config.defaultFilterChain != nil)
        func terminal(_ chain: FilterChain) -> ChainTerminal? {
            for filter in chain.filters {
                switch filter {
                case .tcpProxy(let proxy):
                    return .tcpProxy(TCPProxyRoute(
                        listenerName: config.name, config: proxy, stats: TCPProxyStats(prefix: proxy.statPrefix, store: store)))
                case .httpConnectionManager(let manager):
                    do {
                        return .http(try CompiledHTTPConnectionManager(config: manager, store: store, runtime: http))
                    } catch {
                        logger.error("listener \(config.name): \(error)")
                        return .invalid("\(error)")
                    }
                }
            }
            return nil
        }
        self.chainTerminals = config.filterChains.map(terminal)
        self.defaultTerminal = config.defaultFilterChain.flatMap(terminal)
    }

    /// The terminal filter of the chain a connection selects, or nil (no chain matched).
    func terminal(for connection: ConnectionMetadata) -> ChainTerminal? {
        switch selector.select(connection) {
        case .chain(let index): return chainTerminals[index]
        case .defaultChain: return defaultTerminal
        case nil: return nil
        }
    }

    /// The TCP proxy route of the chain a connection selects, if that chain proxies TCP.
    func route(for connection: ConnectionMetadata) -> TCPProxyRoute? {
        if case .tcpProxy(let route)? = terminal(for: connection) { return route }
        return nil
    }
}

/// Every listener of the current configuration, with the index `use_original_dst` hand-off needs.
final class ListenerTable: Sendable {
    let listeners: [CompiledListener]
    private let handoffTargets: [UInt16: [CompiledListener]]

    /// Compiles `configs`, reusing the compiled form of listeners `previous` already had unchanged.
    init(configs: [ListenerConfig], store: StatsStore, http: HTTPRuntime, logger: Logger, previous: ListenerTable? = nil) {
        var reusable: [String: CompiledListener] = [:]
        for listener in previous?.listeners ?? [] { reusable[listener.config.name] = listener }
        listeners = configs.map { config in
            if let existing = reusable[config.name], existing.config == config { return existing }
            return CompiledListener(config: config, store: store, http: http, logger: logger)
        }
        var targets: [UInt16: [CompiledListener]] = [:]
        for listener in listeners where !listener.config.bindToPort {
            for address in listener.config.addresses {
                targets[address.endpoint.port, default: []].append(listener)
            }
        }
        handoffTargets = targets
    }

    func listener(for role: CaptureRole) -> CompiledListener? {
        listeners.first { $0.config.capture == role }
    }

    /// Where `use_original_dst` hands a connection to: the listener with exactly the original
    /// destination address, else one with the wildcard address of the same family and port.
    func handoffTarget(for destination: SocketEndpoint) -> CompiledListener? {
        guard let candidates = handoffTargets[destination.port] else { return nil }
        if let exact = candidates.first(where: { $0.config.addresses.contains { $0.endpoint == destination } }) {
            return exact
        }
        return candidates.first { listener in
            listener.config.addresses.contains {
                $0.endpoint.address.isUnspecified
                    && ($0.endpoint.address.isV4 == destination.address.isV4 || $0.ipv4Compatible)
            }
        }
    }
}

/// The current listener table, which configuration updates replace.
final class ListenerTableSource: Sendable {
    private let table: NIOLockedValueBox<ListenerTable>

    init(_ table: ListenerTable) {
        self.table = NIOLockedValueBox(table)
    }

    var current: ListenerTable { table.withLockedValue { $0 } }

    func replace(with table: ListenerTable) {
        self.table.withLockedValue { $0 = table }
    }

    func listener(named name: String) -> CompiledListener? {
        current.listeners.first { $0.config.name == name }
    }
}
