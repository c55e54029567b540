import Logging
import NIOCore
import SluiceModel

/// What connections accepted in one namespace share: where upstream sockets are created, whose
/// stats they count toward, and the configuration (listeners for hand-off, clusters) they use:
/// the proxy's, or a workload's own when it has per-workload xDS.
struct AcceptScope: Sendable {
    let socketFactory: SocketFactory
    let workloadStats: WorkloadStats?
    let tables: ListenerTableSource
    let clusters: ClusterManager
}

/// Initializes each accepted connection: restores the original destination, applies
/// `use_original_dst` hand-off, selects the filter chain and installs the TCP proxy session.
struct ConnectionAcceptor: Sendable {
    let state: ListenerState
    let scope: AcceptScope
    let logger: Logger

    func initialize(_ channel: any Channel) -> EventLoopFuture<Void> {
        let listener = state.listener
        let stats = listener.stats
        stats.downstreamConnectionsTotal.increment()
        let workloadStats = scope.workloadStats
        if let workloadStats {
            workloadStats.connectionsTotal.increment()
            switch listener.config.capture {
            case .outbound?: workloadStats.outboundConnections.increment()
            case .inbound?: workloadStats.inboundConnections.increment()
            case nil: break
            }
        }
        let mark = ConnectionMark()
        Self.track(channel, state: state, workloadStats: workloadStats, mark: mark)
        guard let local = SocketEndpoint(channel.localAddress), let remote = SocketEndpoint(channel.remoteAddress) else {
            return channel.eventLoop.makeFailedFuture(AcceptError.noAddress)
        }
        let lookup = listener.config.restoresOriginalDestination
            ? OriginalDestination.lookup(channel, localAddress: local)
            : channel.eventLoop.makeSucceededFuture(nil)
        return lookup.flatMapThrowing { original in
            try self.install(on: channel, listener: listener, local: local, remote: remote, original: original, mark: mark)
        }
    }

    /// Counts a downstream connection as active on its listener (and workload) until it closes,
    /// and keeps it in the listener's connection set for draining and migration.
    static func track(_ channel: any Channel, state: ListenerState, workloadStats: WorkloadStats?, mark: ConnectionMark) {
        let stats = state.listener.stats
        state.connections.insert(channel)
        stats.downstreamConnectionsActive.increment()
        workloadStats?.connectionsActive.increment()
        channel.closeFuture.assumeIsolated().whenComplete { _ in
            stats.downstreamConnectionsActive.decrement()
            if !mark.migrated { stats.downstreamConnectionsDestroyed.increment() }
            workloadStats?.connectionsActive.decrement()
        }
    }

    private func install(
        on channel: any Channel, listener: CompiledListener, local: SocketEndpoint, remote: SocketEndpoint,
        original: SocketEndpoint?, mark: ConnectionMark
    ) throws {
        let destination = original ?? local
        // TPROXY does no NAT (conntrack's original destination, if any, is the local address),
        // and the connection's local address is the one the client dialled rather than one
        // of the listener's.
        let translated = original != nil && original != local
        let addressedToListener = !translated && listener.config.addresses.contains { $0.endpoint.port == local.port }
        let transparent = !translated && !addressedToListener && scope.socketFactory.inbound == .transparent
            && listener.config.capture == .inbound
        var target = listener
        if listener.config.useOriginalDestination, !addressedToListener,
           let handoff = scope.tables.current.handoffTarget(for: destination) {
            target = handoff
        }
        let metadata = ConnectionMetadata(destination: destination, source: remote)
        guard let terminal = target.terminal(for: metadata) else {
            target.stats.noFilterChainMatch.increment()
            throw AcceptError.noFilterChainMatch
        }
        switch terminal {
        case .tcpProxy(let route):
            route.stats.downstreamConnectionsTotal.increment()
            let origin = DownstreamOrigin(
                metadata: metadata,
                addressedToListener: addressedToListener,
                transparentSource: transparent ? remote : nil,
                socketFactory: scope.socketFactory,
                workloadStats: scope.workloadStats,
                mark: mark)
            let session = TCPProxySession(
                route: route, origin: origin, clusters: scope.clusters, eventLoop: channel.eventLoop, logger: logger)
            try channel.pipeline.syncOperations.addHandler(RelayHandler(session: session, side: .downstream))
        case .http(let manager):
            let scope = self.scope
            let limit = listener.config.perConnectionBufferLimitBytes
            let source = transparent ? remote : nil
            try HTTPCodecSetup.install(on: channel, manager: manager) { isHTTP2 in
                HTTPDownstreamConnection(
                    remote: remote, local: destination, isHTTP2: isHTTP2, bufferLimit: limit, clusters: scope.clusters,
                    runtime: manager.runtime, socketFactory: scope.socketFactory, transparentSource: source,
                    eventLoop: channel.eventLoop)
            }
        case .invalid(let reason):
            throw AcceptError.invalidChain(reason)
        }
    }
}

/// Why an accepted connection was closed before proxying.
enum AcceptError: Error {
    case noAddress
    case noFilterChainMatch
    case invalidChain(String)
}
