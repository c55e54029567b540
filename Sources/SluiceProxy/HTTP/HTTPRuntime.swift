import NIOConcurrencyHelpers
import NIOCore
import SluiceLinux
import SluiceModel

/// What every HTTP connection manager of the proxy shares: upstream connection pools (one set
/// per event loop), per-cluster request stats, RDS route tables, and the drain flag the hot
/// upgrade sets.
public final class HTTPRuntime: Sendable {
    private let store: StatsStore
    private let loops = NIOLockedValueBox<[ObjectIdentifier: (loop: any EventLoop, resources: NIOLoopBound<HTTPLoopResources>)]>([:])
    private let statsByCluster = NIOLockedValueBox<[ObjectIdentifier: HTTPClusterStats]>([:])
    private let draining = NIOLockedValueBox(false)
    let routeTables: RouteTableRegistry

    init(store: StatsStore) {
        self.store = store
        self.routeTables = RouteTableRegistry()
    }

    /// Whether connections are being drained: HTTP/1 responses say `Connection: close`, HTTP/2
    /// connections get GOAWAY.
    public var isDraining: Bool { draining.withLockedValue { $0 } }

    public func startDraining() { draining.withLockedValue { $0 = true } }

    /// The upstream pools and timeouts of `eventLoop`; only used on that loop.
    func resources(on eventLoop: any EventLoop) -> HTTPLoopResources {
        let key = ObjectIdentifier(eventLoop)
        return loops.withLockedValue { loops in
            if let existing = loops[key] { return existing.resources.value }
            let created = HTTPLoopResources(eventLoop: eventLoop)
            loops[key] = (eventLoop, NIOLoopBound(created, eventLoop: eventLoop))
            return created
        }
    }

    /// Drops, on every loop, the pools of hosts that left their cluster: idle connections close,
    /// exchanges in flight finish and their connections close after them (Envoy drains them).
    func closePoolsOfDepartedHosts() {
        for entry in loops.withLockedValue({ Array($0.values) }) {
            let resources = entry.resources
            entry.loop.execute { resources.value.pools.retireDepartedHosts() }
        }
    }

    /// How many host pools exist on all loops (tests).
    var poolCount: Int {
        get async throws {
            var total = 0
            for entry in loops.withLockedValue({ Array($0.values) }) {
                let resources = entry.resources
                total += try await entry.loop.submit { resources.value.pools.count }.get()
            }
            return total
        }
    }

    func clusterStats(_ cluster: UpstreamCluster) -> HTTPClusterStats {
        statsByCluster.withLockedValue { stats in
            let key = ObjectIdentifier(cluster)
            if let existing = stats[key] { return existing }
            let created = HTTPClusterStats(cluster: cluster.config.name, store: store)
            stats[key] = created
            return created
        }
    }

    /// Creates the request stats of `clusters` up front, so they read 0 before the first
    /// request, as Envoy's do.
    public func prepareStats(for clusters: [UpstreamCluster]) {
        for cluster in clusters { _ = clusterStats(cluster) }
    }

    /// HTTP/1.1 unless the cluster asks for HTTP/2 (or the downstream protocol).
    func upstreamProtocol(for cluster: UpstreamCluster, downstreamIsHTTP2: Bool) -> UpstreamHTTPProtocol {
        switch cluster.config.upstreamHTTP.protocolChoice {
        case .http1: return .http1
        case .http2: return .http2
        case .useDownstream: return downstreamIsHTTP2 ? .http2 : .http1
        }
    }
}

/// What the HTTP streams of one event loop share.
final class HTTPLoopResources {
    let pools: HTTPUpstreamPools
    let timeouts: LoopTimeouts

    init(eventLoop: any EventLoop) {
        pools = HTTPUpstreamPools(eventLoop: eventLoop)
        timeouts = LoopTimeouts(eventLoop: eventLoop)
    }
}

/// Every upstream pool of one event loop, by host, cluster, namespace and protocol.
final class HTTPUpstreamPools {
    private struct Key: Hashable {
        let host: ObjectIdentifier
        let cluster: ObjectIdentifier
        let namespace: NetworkNamespace.Identity
        let transparentSource: SocketEndpoint?
        let upstreamProtocol: UpstreamHTTPProtocol
    }

    private let eventLoop: any EventLoop
    private var pools: [Key: HTTPUpstreamHostPool] = [:]

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func pool(
        host: UpstreamHost, cluster: UpstreamCluster, connection: HTTPDownstreamConnection,
        upstreamProtocol: UpstreamHTTPProtocol
    ) -> HTTPUpstreamHostPool {
        let key = Key(
            host: ObjectIdentifier(host), cluster: ObjectIdentifier(cluster),
            namespace: connection.socketFactory.namespace.identity, transparentSource: connection.transparentSource,
            upstreamProtocol: upstreamProtocol)
        if let existing = pools[key] { return existing }
        let created = HTTPUpstreamHostPool(
            eventLoop: eventLoop, host: host, cluster: cluster, socketFactory: connection.socketFactory,
            transparentSource: connection.transparentSource, upstreamProtocol: upstreamProtocol,
            http2Settings: cluster.config.upstreamHTTP.http2, stats: connection.runtime.clusterStats(cluster))
        // A host that already left (picked just before it did) gets a pool for this exchange only.
        if host.hasLeftCluster {
            created.retire()
        } else {
            pools[key] = created
        }
        return created
    }

    var count: Int { pools.count }

    /// Retires and forgets the pools of hosts that left their cluster.
    func retireDepartedHosts() {
        for (key, pool) in pools where pool.host.hasLeftCluster {
            pool.retire()
            pools[key] = nil
        }
    }
}

/// Route tables received over RDS, compiled, by name.
final class RouteTableRegistry: Sendable {
    private let tables = NIOLockedValueBox<[String: CompiledRouteTable]>([:])

    func table(named name: String) -> CompiledRouteTable? {
        tables.withLockedValue { $0[name] }
    }

    /// Replaces the tables with `configs`, keeping compiled tables whose configuration is unchanged.
    func update(_ configs: [String: RouteConfiguration]) throws {
        var compiled: [String: CompiledRouteTable] = [:]
        let current = tables.withLockedValue { $0 }
        for (name, config) in configs {
            if let existing = current[name], existing.config == config {
                compiled[name] = existing
            } else {
                compiled[name] = try CompiledRouteTable(config)
            }
        }
        tables.withLockedValue { $0 = compiled }
    }
}
