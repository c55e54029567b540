import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SluiceModel

/// Owns every upstream cluster: creates them from configuration, applies updates (endpoint
/// changes in place, other changes as a new cluster object, so connections keep the one they
/// started with), keeps DNS clusters resolved and forgets idle original-destination hosts.
public final class ClusterManager: Sendable {
    private let clusters: NIOLockedValueBox<[String: UpstreamCluster]>
    private let timers = NIOLockedValueBox<[ObjectIdentifier: [RepeatedTask]]>([:])
    private let timerLoop = NIOLockedValueBox<(any EventLoop)?>(nil)
    private let store: StatsStore
    private let logger: Logger
    private let resolverPool: NIOThreadPool
    /// Active health checkers per cluster object.
    private let checkers = NIOLockedValueBox<[ObjectIdentifier: [HealthChecker]]>([:])
    /// Where health-check connections are made: the proxy's own namespace, with its mark.
    private let healthCheckSockets: SocketFactory
    /// Told when hosts left their clusters, so connection pools to them can close.
    private let hostsLeftHandler = NIOLockedValueBox<(@Sendable () -> Void)?>(nil)

    /// - Parameter resolverPool: started by the owner and shared by every cluster manager.
    init(configs: [ClusterConfig], store: StatsStore, resolverPool: NIOThreadPool, logger: Logger,
         healthCheckSockets: SocketFactory = SocketFactory(namespace: .home)) {
        self.healthCheckSockets = healthCheckSockets
        var clusters: [String: UpstreamCluster] = [:]
        for config in configs { clusters[config.name] = UpstreamCluster(config: config, store: store) }
        self.clusters = NIOLockedValueBox(clusters)
        self.store = store
        self.logger = logger
        self.resolverPool = resolverPool
    }

    public func cluster(named name: String) -> UpstreamCluster? {
        clusters.withLockedValue { $0[name] }
    }

    public var allClusters: [UpstreamCluster] {
        clusters.withLockedValue { Array($0.values) }.sorted { $0.config.name < $1.config.name }
    }

    /// Calls `handler` whenever hosts left their clusters (discovery, cluster updates, idle
    /// original-destination hosts); `UpstreamHost.hasLeftCluster` tells which.
    func whenHostsLeave(_ handler: @escaping @Sendable () -> Void) {
        hostsLeftHandler.withLockedValue { $0 = handler }
    }

    private func hostsLeft() {
        hostsLeftHandler.withLockedValue { $0 }?()
    }

    /// Whether every cluster finished its first discovery (the server is not ready before).
    public var allInitialized: Bool { allClusters.allSatisfy(\.isInitialized) }

    /// Starts DNS refresh and host clean-up on `eventLoop`; resolves DNS clusters once first.
    func start(on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        timerLoop.withLockedValue { $0 = eventLoop }
        return EventLoopFuture.andAllComplete(allClusters.map { startTimers($0, on: eventLoop) }, on: eventLoop)
    }

    /// Makes the clusters exactly `configs`; resolves new DNS clusters before returning.
    func update(_ configs: [ClusterConfig]) async {
        guard let eventLoop = timerLoop.withLockedValue({ $0 }) else { return }
        var started: [EventLoopFuture<Void>] = []
        var changedEndpoints: [UpstreamCluster] = []
        var anyHostLeft = false
        let (added, removed) = clusters.withLockedValue { clusters -> ([UpstreamCluster], [UpstreamCluster]) in
            var added: [UpstreamCluster] = []
            var removed: [UpstreamCluster] = []
            let wanted = Set(configs.map(\.name))
            for (name, cluster) in clusters where !wanted.contains(name) {
                removed.append(cluster)
                clusters[name] = nil
            }
            for config in configs {
                if let existing = clusters[config.name] {
                    if existing.config == config { continue }
                    if existing.differsOnlyInEndpoints(from: config) {
                        anyHostLeft = existing.replaceHosts(
                            UpstreamCluster.hosts(from: config.loadAssignment),
                            overprovisioningFactor: config.loadAssignment.overprovisioningFactor) || anyHostLeft
                        changedEndpoints.append(existing)
                        continue
                    }
                    removed.append(existing)
                }
                let cluster = UpstreamCluster(config: config, store: store)
                clusters[config.name] = cluster
                added.append(cluster)
            }
            return (added, removed)
        }
        for cluster in changedEndpoints { hostsChanged(cluster) }
        for cluster in removed {
            stopTimers(cluster)
            cluster.retireHosts()
        }
        if anyHostLeft || !removed.isEmpty { hostsLeft() }
        for cluster in added { started.append(startTimers(cluster, on: eventLoop)) }
        try? await EventLoopFuture.andAllComplete(started, on: eventLoop).get()
    }

    func shutdown() {
        let all = timers.withLockedValue { timers in
            defer { timers = [:] }
            return timers.values.flatMap { $0 }
        }
        for task in all { task.cancel() }
        let running = checkers.withLockedValue { checkers in
            defer { checkers = [:] }
            return checkers.values.flatMap { $0 }
        }
        for checker in running { checker.stop() }
    }

    private func hostsChanged(_ cluster: UpstreamCluster) {
        for checker in checkers.withLockedValue({ $0[ObjectIdentifier(cluster)] }) ?? [] { checker.hostsChanged() }
    }

    /// Starts the cluster's active health checkers and its outlier-detection interval timer;
    /// the future completes after the checkers' first round (Envoy's cluster initialization).
    private func startHealthTracking(
        _ cluster: UpstreamCluster, on eventLoop: any EventLoop
    ) -> (tasks: [RepeatedTask], firstRound: EventLoopFuture<Void>) {
        var tasks: [RepeatedTask] = []
        if let detector = cluster.outlierDetector {
            let interval = TimeAmount(detector.config.interval)
            tasks.append(eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
                detector.intervalElapsed()
            })
        }
        if let stats = cluster.healthCheckStats {
            let started = cluster.config.healthChecks.map { config in
                HealthChecker(cluster: cluster, config: config, socketFactory: healthCheckSockets, eventLoop: eventLoop, stats: stats)
            }
            checkers.withLockedValue { $0[ObjectIdentifier(cluster)] = started }
            for checker in started { checker.start() }
            return (tasks, EventLoopFuture.andAllComplete(started.map(\.firstRound), on: eventLoop))
        }
        return (tasks, eventLoop.makeSucceededVoidFuture())
    }

    private func startTimers(_ cluster: UpstreamCluster, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        var tasks: [RepeatedTask] = []
        var initial = eventLoop.makeSucceededVoidFuture()
        switch cluster.config.discovery {
        case .strictDNS(let refreshRate, _, _):
            initial = refresh(cluster, on: eventLoop)
            let interval = TimeAmount(refreshRate)
            tasks.append(eventLoop.scheduleRepeatedAsyncTask(initialDelay: interval, delay: interval) { _ in
                self.refresh(cluster, on: eventLoop)
            })
        case .originalDestination(let cleanupInterval):
            let interval = TimeAmount(cleanupInterval)
            tasks.append(eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
                let now = NIODeadline.now().uptimeNanoseconds
                let age = UInt64(interval.nanoseconds)
                if cluster.removeIdleDynamicHosts(olderThan: now > age ? now - age : 0) { self.hostsLeft() }
            })
        case .staticEndpoints, .eds:
            break
        }
        let health = startHealthTracking(cluster, on: eventLoop)
        tasks += health.tasks
        timers.withLockedValue { $0[ObjectIdentifier(cluster)] = tasks }
        return initial.and(health.firstRound).map { _ in }
    }

    private func stopTimers(_ cluster: UpstreamCluster) {
        for task in timers.withLockedValue({ $0.removeValue(forKey: ObjectIdentifier(cluster)) }) ?? [] {
            task.cancel()
        }
        for checker in checkers.withLockedValue({ $0.removeValue(forKey: ObjectIdentifier(cluster)) }) ?? [] {
            checker.stop()
        }
    }

    private func refresh(_ cluster: UpstreamCluster, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        guard case .strictDNS(_, let family, _) = cluster.config.discovery else {
            return eventLoop.makeSucceededVoidFuture()
        }
        let assignment = cluster.config.loadAssignment
        let previous = cluster.hostSet.allHosts
        let logger = self.logger
        return resolverPool.runIfActive(eventLoop: eventLoop) { () -> [UpstreamHost] in
            var hosts: [UpstreamHost] = []
            for locality in assignment.localities {
                for endpoint in locality.endpoints {
                    switch endpoint.address {
                    case .ip(let address):
                        hosts.append(UpstreamHost(
                            address: address, weight: endpoint.weight, health: endpoint.health,
                            locality: locality.locality, localityWeight: locality.weight, priority: locality.priority))
                    case .pipe:
                        break
                    case .hostname(let name, let port):
                        do {
                            for address in try DNSResolver.resolve(name, port: port, family: family) {
                                hosts.append(UpstreamHost(
                                    address: address, hostname: name, weight: endpoint.weight,
                                    health: endpoint.health, locality: locality.locality, localityWeight: locality.weight,
                                    priority: locality.priority))
                            }
                        } catch {
                            // Like Envoy, a failed lookup keeps the name's last known hosts.
                            hosts.append(contentsOf: previous.filter { $0.hostname == name && $0.address.port == port })
                            logger.warning("DNS resolution failed", metadata: [
                                "cluster": "\(cluster.config.name)", "error": "\(error)",
                            ])
                        }
                    }
                }
            }
            return hosts
        }.map { hosts in
            if cluster.replaceHosts(hosts) { self.hostsLeft() }
            self.hostsChanged(cluster)
        }.recover { _ in
            cluster.replaceHosts(cluster.hostSet.allHosts)
        }
    }
}
