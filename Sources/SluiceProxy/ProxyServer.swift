import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SluiceLinux
import SluiceModel

/// The shared per-node proxy: host listeners, per-workload capture listeners, the cluster
/// manager and the stats, all on one NIO event loop group. Configuration can be replaced at
/// run time (`apply`), without dropping established connections.
public final class ProxyServer: Sendable {
    /// Where capture listeners (those with a `CaptureRole`) are bound.
    public enum CapturePlacement: Sendable {
        /// Inside each enrolled workload's namespace (the node proxy).
        case perWorkload
        /// In the proxy's own namespace, like any other listener (a plain Envoy-style proxy).
        case proxyNamespace
    }

    public let stats: StatsStore
    public let clusters: ClusterManager
    /// What the HTTP connection managers share (pools, RDS route tables, draining).
    public let http: HTTPRuntime
    public let group: MultiThreadedEventLoopGroup
    private let configurationBox: NIOLockedValueBox<ProxyConfiguration>
    private let tables: ListenerTableSource
    private let placement: CapturePlacement
    private let drainTime: TimeAmount
    let logger: Logger
    let hostBindings = NIOLockedValueBox<[String: ListenerBinding]>([:])
    let workloads = NIOLockedValueBox<[String: WorkloadRuntime]>([:])
    /// Listening sockets handed over by the previous process, claimed as listeners bind.
    public let inherited: InheritedSockets?
    /// Whether listeners accept; a process taking over starts once the previous one stopped.
    let accepting: NIOLockedValueBox<Bool>
    /// Listeners closed for a hot upgrade, kept for a rollback.
    let parkedListeners = NIOLockedValueBox<[ParkedListener]>([])
    /// Per-workload configurations that arrived before their workload was attached.
    private let pendingWorkloadConfigurations = NIOLockedValueBox<[String: ProxyConfiguration]>([:])
    private let resolverPool = NIOThreadPool(numberOfThreads: 1)
    /// Serializes configuration and workload changes so that no two interleave.
    let changes = SerialChangeQueue()
    private let started = NIOLockedValueBox(false)
    private let dynamicConfigurationReady: NIOLockedValueBox<Bool>
    let hostScope: AcceptScope

    /// - Parameters:
    ///   - waitsForDynamicConfiguration: not ready until `markDynamicConfigurationReady()` (xDS).
    ///   - drainTime: how long connections of a removed listener may finish (Envoy's drain time).
    ///   - inherited: listening sockets from the process this one takes over from.
    public init(
        configuration: ProxyConfiguration,
        workerThreads: Int = 1,
        placement: CapturePlacement = .perWorkload,
        waitsForDynamicConfiguration: Bool = false,
        drainTime: Duration = .seconds(600),
        stats: StatsStore = StatsStore(),
        inherited: InheritedSockets? = nil,
        logger: Logger = Logger(label: "sluice.proxy")
    ) {
        self.inherited = inherited
        self.accepting = NIOLockedValueBox(inherited == nil)
        self.configurationBox = NIOLockedValueBox(configuration)
        self.stats = stats
        self.placement = placement
        self.drainTime = TimeAmount(drainTime)
        self.logger = logger
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, workerThreads))
        let http = HTTPRuntime(store: stats)
        self.http = http
        do {
            try http.routeTables.update(configuration.routeConfigurations)
        } catch {
            logger.error("route configurations: \(error)")
        }
        self.tables = ListenerTableSource(
            ListenerTable(configs: configuration.listeners, store: stats, http: http, logger: logger))
        self.clusters = ClusterManager(
            configs: configuration.clusters, store: stats, resolverPool: resolverPool, logger: logger)
        clusters.whenHostsLeave { http.closePoolsOfDepartedHosts() }
        self.hostScope = AcceptScope(
            socketFactory: SocketFactory(namespace: .home), workloadStats: nil, tables: tables, clusters: clusters)
        self.dynamicConfigurationReady = NIOLockedValueBox(!waitsForDynamicConfiguration)
        stats.gauge(StatName(scope: "server", leaf: "live")).set(0)
    }

    /// The configuration being served.
    public var configuration: ProxyConfiguration { configurationBox.withLockedValue { $0 } }

    /// Resolves DNS clusters and binds the listeners that live in the proxy's own namespace.
    public func start() async throws {
        resolverPool.start()
        try await clusters.start(on: group.next()).get()
        http.prepareStats(for: clusters.allClusters)
        try await changes.run {
            try await self.reconcileHostBindings(self.tables.current, strict: true)
        }
        started.withLockedValue { $0 = true }
        stats.gauge(StatName(scope: "server", leaf: "live")).set(1)
    }

    /// Replaces the whole configuration: clusters first (so new listeners find them), then
    /// listeners. Unchanged listeners keep their sockets; changed ones with the same addresses
    /// are updated in place; removed ones (or ones whose addresses changed) are drained.
    public func apply(_ configuration: ProxyConfiguration) async {
        await changes.runIgnoringErrors {
            let previous = self.tables.current
            await self.clusters.update(configuration.clusters)
            self.http.prepareStats(for: self.clusters.allClusters)
            do {
                try self.http.routeTables.update(configuration.routeConfigurations)
            } catch {
                self.logger.error("route configurations: \(error)")
            }
            let table = ListenerTable(
                configs: configuration.listeners, store: self.stats, http: self.http, logger: self.logger, previous: previous)
            self.tables.replace(with: table)
            self.configurationBox.withLockedValue { $0 = configuration }
            try? await self.reconcileHostBindings(table, strict: false)
            for workload in self.workloads.withLockedValue({ Array($0.values) }) where workload.configuration == nil {
                try? await self.reconcileCaptureBindings(workload, table: table, strict: false)
            }
        }
    }

    /// Whether the proxy serves: started, initial dynamic configuration applied (if any), and
    /// every cluster finished its first discovery.
    public var isReady: Bool {
        started.withLockedValue { $0 } && dynamicConfigurationReady.withLockedValue { $0 } && clusters.allInitialized
    }

    /// Called once xDS has delivered (and warmed) the initial configuration.
    public func markDynamicConfigurationReady() {
        dynamicConfigurationReady.withLockedValue { $0 = true }
    }

    /// Addresses of the listeners bound in the proxy's own namespace, by listener name.
    public var hostListenerAddresses: [(name: String, addresses: [SocketEndpoint])] {
        hostBindings.withLockedValue { $0 }.sorted { $0.key < $1.key }.map { ($0.key, $0.value.boundAddresses) }
    }

    /// Binds the capture listeners inside the workload's namespace. Adding a workload that is
    /// already served from the same namespace changes nothing; a new namespace replaces the old.
    /// With `ownConfiguration` (per-workload xDS), the workload's listeners and clusters come
    /// from it instead of the proxy's configuration (a configuration `applyWorkloadConfiguration`
    /// delivered earlier wins over this initial one).
    public func addWorkload(
        _ identity: WorkloadIdentity, namespace: NetworkNamespace, inbound: InboundDelivery = .redirected,
        ownConfiguration: ProxyConfiguration? = nil
    ) async throws {
        try await changes.run {
            if let existing = self.workloads.withLockedValue({ $0[identity.id] }) {
                if existing.namespace.identity == namespace.identity, existing.scope.socketFactory.inbound == inbound { return }
                await self.detach(existing)
            }
            let workloadStats = WorkloadStats(workload: identity.id, store: self.stats)
            let configuration = ownConfiguration.map {
                self.pendingWorkloadConfigurations.withLockedValue { $0.removeValue(forKey: identity.id) } ?? $0
            }
            let scope: AcceptScope
            if let configuration {
                // Health checks of a workload's own clusters leave from its namespace, like its traffic.
                let clusters = ClusterManager(
                    configs: configuration.clusters, store: self.stats, resolverPool: self.resolverPool, logger: self.logger,
                    healthCheckSockets: SocketFactory(namespace: namespace, inbound: inbound))
                let http = self.http
                clusters.whenHostsLeave { http.closePoolsOfDepartedHosts() }
                try await clusters.start(on: self.group.next()).get()
                scope = AcceptScope(
                    socketFactory: SocketFactory(namespace: namespace, inbound: inbound), workloadStats: workloadStats,
                    tables: ListenerTableSource(ListenerTable(
                        configs: configuration.listeners, store: self.stats, http: self.http, logger: self.logger)),
                    clusters: clusters)
            } else {
                scope = AcceptScope(
                    socketFactory: SocketFactory(namespace: namespace, inbound: inbound), workloadStats: workloadStats, tables: self.tables,
                    clusters: self.clusters)
            }
            let runtime = WorkloadRuntime(
                identity: identity, namespace: namespace, scope: scope, stats: workloadStats, configuration: configuration)
            do {
                try await self.reconcileCaptureBindings(runtime, table: scope.tables.current, strict: true)
            } catch {
                await self.detach(runtime)
                throw WorkloadAttachError(workload: identity.id, underlying: error)
            }
            self.workloads.withLockedValue { $0[identity.id] = runtime }
            self.stats.gauge(StatName(scope: "sluice", leaf: "workloads_active")).set(Int64(self.workloadCount))
            self.logger.info("workload attached", metadata: ["workload": "\(identity.id)", "netns": "\(namespace)"])
        }
    }

    /// Replaces one workload's own configuration (per-workload xDS), like `apply` does for the
    /// proxy's. Arriving before the workload is attached, it is kept for `addWorkload`.
    public func applyWorkloadConfiguration(id: String, _ configuration: ProxyConfiguration) async {
        await changes.runIgnoringErrors {
            guard let runtime = self.workloads.withLockedValue({ $0[id] }), let box = runtime.configuration else {
                self.pendingWorkloadConfigurations.withLockedValue { $0[id] = configuration }
                return
            }
            box.withLockedValue { $0 = configuration }
            await runtime.scope.clusters.update(configuration.clusters)
            let table = ListenerTable(
                configs: configuration.listeners, store: self.stats, http: self.http, logger: self.logger,
                previous: runtime.scope.tables.current)
            runtime.scope.tables.replace(with: table)
            try? await self.reconcileCaptureBindings(runtime, table: table, strict: false)
        }
    }

    /// Closes the workload's capture listeners; its established connections finish normally.
    public func removeWorkload(id: String) async {
        await changes.runIgnoringErrors {
            self.pendingWorkloadConfigurations.withLockedValue { $0[id] = nil }
            guard let runtime = self.workloads.withLockedValue({ $0.removeValue(forKey: id) }) else { return }
            await self.detach(runtime)
            // Per-workload stats go with the workload, so churn never grows the stats store.
            self.stats.removeAll(scope: "sluice.workload", tagValue: id)
            self.stats.gauge(StatName(scope: "sluice", leaf: "workloads_active")).set(Int64(self.workloadCount))
            self.logger.info("workload detached", metadata: ["workload": "\(id)"])
        }
    }

    public var workloadStatuses: [WorkloadStatus] {
        workloads.withLockedValue { Array($0.values) }.map(\.status).sorted { $0.identity.id < $1.identity.id }
    }

    private var workloadCount: Int { workloads.withLockedValue { $0.count } }

    /// Stops accepting everywhere, then stops the event loops.
    public func shutdown() async {
        stats.gauge(StatName(scope: "server", leaf: "live")).set(0)
        for binding in hostBindings.withLockedValue({ Array($0.values) }) { await binding.close() }
        for runtime in workloads.withLockedValue({ Array($0.values) }) { await detach(runtime) }
        workloads.withLockedValue { $0 = [:] }
        clusters.shutdown()
        try? await resolverPool.shutdownGracefully()
        try? await group.shutdownGracefully()
    }

    // MARK: Bindings

    /// Listeners bound in the proxy's own namespace.
    private func hostPlaced(_ listener: CompiledListener) -> Bool {
        listener.config.bindToPort && (listener.config.capture == nil || placement == .proxyNamespace)
    }

    /// Listeners bound inside each workload.
    private func workloadPlaced(_ listener: CompiledListener) -> Bool {
        listener.config.bindToPort && listener.config.capture != nil && placement == .perWorkload
    }

    private func reconcileHostBindings(_ table: ListenerTable, strict: Bool) async throws {
        let wanted = table.listeners.filter(hostPlaced)
        var bindings = hostBindings.withLockedValue { $0 }
        try await reconcile(&bindings, wanted: wanted, scope: hostScope, strict: strict)
        hostBindings.withLockedValue { [bindings] in $0 = bindings }
    }

    private func reconcileCaptureBindings(_ workload: WorkloadRuntime, table: ListenerTable, strict: Bool) async throws {
        let wanted = table.listeners.filter(workloadPlaced)
        var bindings = workload.bindings.withLockedValue { $0 }
        defer { workload.bindings.withLockedValue { [bindings] in $0 = bindings } }
        try await reconcile(&bindings, wanted: wanted, scope: workload.scope, strict: strict)
    }

    /// Makes `bindings` serve exactly `wanted`. With `strict`, the first bind failure is thrown
    /// (start-up, enrollment); otherwise it is logged and the rest still applies (updates).
    private func reconcile(
        _ bindings: inout [String: ListenerBinding], wanted: [CompiledListener], scope: AcceptScope, strict: Bool
    ) async throws {
        let names = Set(wanted.map(\.config.name))
        for (name, binding) in bindings where !names.contains(name) {
            bindings[name] = nil
            await binding.drain(after: drainTime, on: group.next())
        }
        for listener in wanted {
            if let existing = bindings[listener.config.name] {
                if existing.listener === listener { continue }
                if existing.listener.config.addresses == listener.config.addresses {
                    existing.state.update(listener)
                    continue
                }
                bindings[listener.config.name] = nil
                await existing.drain(after: drainTime, on: group.next())
            }
            do {
                bindings[listener.config.name] = try await ListenerBinding.bind(
                    listener, scope: scope, group: group, inherited: inherited,
                    accepting: accepting.withLockedValue { $0 }, logger: logger)
            } catch {
                if strict { throw error }
                logger.error("cannot bind listener", metadata: ["listener": "\(listener.config.name)", "error": "\(error)"])
            }
        }
    }

    /// Closes the runtime's capture listeners and, when it owns its clusters, their timers.
    private func detach(_ runtime: WorkloadRuntime) async {
        for binding in runtime.bindings.withLockedValue({ Array($0.values) }) { await binding.close() }
        runtime.bindings.withLockedValue { $0 = [:] }
        if runtime.configuration != nil { runtime.scope.clusters.shutdown() }
    }
}

/// A workload whose capture listeners could not be created.
public struct WorkloadAttachError: Error, CustomStringConvertible {
    public var workload: String
    public var underlying: any Error

    public var description: String { "workload \(workload): \(underlying)" }
}

/// Runs changes one at a time, in arrival order.
final class SerialChangeQueue: Sendable {
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
