import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SluiceModel

/// Owns every upstream cluster: creates them from configuration, keeps DNS clusters resolved
/// and forgets idle original-destination hosts.
public final class ClusterManager: Sendable {
    private let clusters: NIOLockedValueBox<[String: UpstreamCluster]>
    private let timers = NIOLockedValueBox<[RepeatedTask]>([])
    private let logger: Logger
    private let resolverPool: NIOThreadPool

    init(configs: [ClusterConfig], store: StatsStore, logger: Logger) {
        var clusters: [String: UpstreamCluster] = [:]
        for config in configs { clusters[config.name] = UpstreamCluster(config: config, store: store) }
        self.clusters = NIOLockedValueBox(clusters)
        self.logger = logger
        self.resolverPool = NIOThreadPool(numberOfThreads: 1)
    }

    public func cluster(named name: String) -> UpstreamCluster? {
        clusters.withLockedValue { $0[name] }
    }

    public var allClusters: [UpstreamCluster] {
        clusters.withLockedValue { Array($0.values) }.sorted { $0.config.name < $1.config.name }
    }

    /// Whether every cluster finished its first discovery (the server is not ready before).
    public var allInitialized: Bool { allClusters.allSatisfy(\.isInitialized) }

    /// Starts DNS refresh and host clean-up on `eventLoop`; resolves DNS clusters once first.
    func start(on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        resolverPool.start()
        var initial: [EventLoopFuture<Void>] = []
        var tasks: [RepeatedTask] = []
        for cluster in allClusters {
            switch cluster.config.discovery {
            case .strictDNS(let refreshRate, _, _):
                initial.append(refresh(cluster, on: eventLoop))
                let interval = TimeAmount(refreshRate)
                tasks.append(eventLoop.scheduleRepeatedAsyncTask(initialDelay: interval, delay: interval) { _ in
                    self.refresh(cluster, on: eventLoop)
                })
            case .originalDestination(let cleanupInterval):
                let interval = TimeAmount(cleanupInterval)
                tasks.append(eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
                    let now = NIODeadline.now().uptimeNanoseconds
                    let age = UInt64(interval.nanoseconds)
                    cluster.removeIdleDynamicHosts(olderThan: now > age ? now - age : 0)
                })
            case .staticEndpoints:
                break
            }
        }
        timers.withLockedValue { $0 = tasks }
        return EventLoopFuture.andAllComplete(initial, on: eventLoop)
    }

    func shutdown() {
        timers.withLockedValue { tasks in
            for task in tasks { task.cancel() }
            tasks = []
        }
        try? resolverPool.syncShutdownGracefully()
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
                            locality: locality.locality, priority: locality.priority))
                    case .hostname(let name, let port):
                        do {
                            for address in try DNSResolver.resolve(name, port: port, family: family) {
                                hosts.append(UpstreamHost(
                                    address: address, hostname: name, weight: endpoint.weight,
                                    health: endpoint.health, locality: locality.locality, priority: locality.priority))
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
            cluster.replaceHosts(hosts)
        }.recover { _ in
            cluster.replaceHosts(cluster.hostSet.allHosts)
        }
    }
}
