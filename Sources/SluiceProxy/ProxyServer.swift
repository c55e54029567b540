import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SluiceLinux
import SluiceModel

/// The shared per-node proxy: host listeners, per-workload capture listeners, the cluster
/// manager and the stats, all on one NIO event loop group.
public final class ProxyServer: Sendable {
    /// Where capture listeners (those with a `CaptureRole`) are bound.
    public enum CapturePlacement: Sendable {
        /// Inside each enrolled workload's namespace (the node proxy).
        case perWorkload
        /// In the proxy's own namespace, like any other listener (a plain Envoy-style proxy).
        case proxyNamespace
    }

    public let configuration: ProxyConfiguration
    public let stats: StatsStore
    public let clusters: ClusterManager
    public let group: MultiThreadedEventLoopGroup
    private let table: ListenerTable
    private let placement: CapturePlacement
    private let logger: Logger
    private let hostBindings = NIOLockedValueBox<[ListenerBinding]>([])
    private let workloads = NIOLockedValueBox<[String: WorkloadRuntime]>([:])
    /// Serializes workload changes so two updates for one workload never interleave.
    private let workloadChanges = WorkloadChangeQueue()
    private let started = NIOLockedValueBox(false)
    private let hostScope: AcceptScope

    public init(
        configuration: ProxyConfiguration,
        workerThreads: Int = 1,
        placement: CapturePlacement = .perWorkload,
        stats: StatsStore = StatsStore(),
        logger: Logger = Logger(label: "sluice.proxy")
    ) {
        self.configuration = configuration
        self.stats = stats
        self.placement = placement
        self.logger = logger
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, workerThreads))
        self.table = ListenerTable(configs: configuration.listeners, store: stats)
        self.clusters = ClusterManager(configs: configuration.clusters, store: stats, logger: logger)
        self.hostScope = AcceptScope(socketFactory: SocketFactory(namespace: .home), workloadStats: nil)
        stats.gauge(StatName(scope: "server", leaf: "live")).set(0)
    }

    /// Resolves DNS clusters and binds the listeners that live in the proxy's own namespace.
    public func start() async throws {
        try await clusters.start(on: group.next()).get()
        var bindings: [ListenerBinding] = []
        do {
            for listener in table.listeners where listener.config.bindToPort {
                if listener.config.capture != nil, placement == .perWorkload { continue }
                bindings.append(try await ListenerBinding.bind(
                    listener, table: table, scope: hostScope, clusters: clusters, group: group, logger: logger))
            }
        } catch {
            for binding in bindings { await binding.close() }
            throw error
        }
        hostBindings.withLockedValue { $0 = bindings }
        started.withLockedValue { $0 = true }
        stats.gauge(StatName(scope: "server", leaf: "live")).set(1)
    }

    /// Whether the proxy serves: started, and every cluster finished its first discovery.
    public var isReady: Bool {
        started.withLockedValue { $0 } && clusters.allInitialized
    }

    /// Addresses of the listeners bound in the proxy's own namespace, by listener name.
    public var hostListenerAddresses: [(name: String, addresses: [SocketEndpoint])] {
        hostBindings.withLockedValue { $0 }.map { ($0.listener.config.name, $0.boundAddresses) }
    }

    /// Binds the capture listeners inside the workload's namespace. Adding a workload that is
    /// already served from the same namespace changes nothing; a new namespace replaces the old.
    public func addWorkload(_ identity: WorkloadIdentity, namespace: NetworkNamespace) async throws {
        try await workloadChanges.run {
            if let existing = self.workloads.withLockedValue({ $0[identity.id] }) {
                if existing.namespace.identity == namespace.identity { return }
                await self.detach(existing)
            }
            let runtime = try await self.attach(identity, namespace: namespace)
            self.workloads.withLockedValue { $0[identity.id] = runtime }
            self.stats.gauge(StatName(scope: "sluice", leaf: "workloads_active")).set(Int64(self.workloadCount))
            self.logger.info("workload attached", metadata: ["workload": "\(identity.id)", "netns": "\(namespace)"])
        }
    }

    /// Closes the workload's capture listeners; its established connections finish normally.
    public func removeWorkload(id: String) async {
        await workloadChanges.runIgnoringErrors {
            guard let runtime = self.workloads.withLockedValue({ $0.removeValue(forKey: id) }) else { return }
            await self.detach(runtime)
            // Per-workload stats go with the workload, so churn never grows the stats store.
            self.stats.removeAll(scope: "sluice.workload", tagValue: id)
            self.stats.gauge(StatName(scope: "sluice", leaf: "workloads_active")).set(Int64(self.workloadCount))
            self.logger.info("workload detached", metadata: ["workload": "\(id)"])
        }
    }

    /// Makes the served workloads exactly `desired` (after the agent replays its snapshot).
    public func reconcileWorkloads(_ desired: [(WorkloadIdentity, NetworkNamespace)]) async -> [String: any Error] {
        let wanted = Set(desired.map(\.0.id))
        for id in workloads.withLockedValue({ Array($0.keys) }) where !wanted.contains(id) {
            await removeWorkload(id: id)
        }
        var failures: [String: any Error] = [:]
        for (identity, namespace) in desired {
            do {
                try await addWorkload(identity, namespace: namespace)
            } catch {
                failures[identity.id] = error
            }
        }
        return failures
    }

    public var workloadStatuses: [WorkloadStatus] {
        workloads.withLockedValue { Array($0.values) }.map(\.status).sorted { $0.identity.id < $1.identity.id }
    }

    private var workloadCount: Int { workloads.withLockedValue { $0.count } }

    /// Stops accepting everywhere, then stops the event loops.
    public func shutdown() async {
        stats.gauge(StatName(scope: "server", leaf: "live")).set(0)
        for binding in hostBindings.withLockedValue({ $0 }) { await binding.close() }
        for runtime in workloads.withLockedValue({ Array($0.values) }) { await detach(runtime) }
        workloads.withLockedValue { $0 = [:] }
        clusters.shutdown()
        try? await group.shutdownGracefully()
    }

    private func attach(_ identity: WorkloadIdentity, namespace: NetworkNamespace) async throws -> WorkloadRuntime {
        let workloadStats = WorkloadStats(workload: identity.id, store: stats)
        let scope = AcceptScope(socketFactory: SocketFactory(namespace: namespace), workloadStats: workloadStats)
        var bindings: [ListenerBinding] = []
        do {
            if placement == .perWorkload {
                for listener in table.listeners where listener.config.capture != nil && listener.config.bindToPort {
                    bindings.append(try await ListenerBinding.bind(
                        listener, table: table, scope: scope, clusters: clusters, group: group, logger: logger))
                }
            }
        } catch {
            for binding in bindings { await binding.close() }
            throw WorkloadAttachError(workload: identity.id, underlying: error)
        }
        return WorkloadRuntime(identity: identity, namespace: namespace, bindings: bindings, stats: workloadStats)
    }

    private func detach(_ runtime: WorkloadRuntime) async {
        for binding in runtime.bindings { await binding.close() }
    }
}

/// A workload whose capture listeners could not be created.
public struct WorkloadAttachError: Error, CustomStringConvertible {
    public var workload: String
    public var underlying: any Error

    public var description: String { "workload \(workload): \(underlying)" }
}

/// Runs workload changes one at a time, in arrival order.
final class WorkloadChangeQueue: Sendable {
    private let tail = NIOLockedValueBox<Task<Void, Never>?>(nil)

    func run(_ body: @escaping @Sendable () async throws -> Void) async throws {
        let result = NIOLockedValueBox<Result<Void, any Error>>(.success(()))
        let task = tail.withLockedValue { tail -> Task<Void, Never> in
            let previous = tail
            let next = Task {
                await previous?.value
                do { try await body() } catch { result.withLockedValue { $0 = .failure(error) } }
            }
            tail = next
            return next
        }
        await task.value
        try result.withLockedValue { $0 }.get()
    }

    func runIgnoringErrors(_ body: @escaping @Sendable () async -> Void) async {
        try? await run(body)
    }
}
