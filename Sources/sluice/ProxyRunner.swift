import Foundation
import Logging
import NIOConcurrencyHelpers
import Synchronization
import SluiceAdmin
import SluiceConfig
import SluiceLinux
import SluiceModel
import SluiceNode
import SluiceProxy
import SluiceUpgrade

/// Assembles and runs the proxy: configuration, data path, admin API and the agent link.
struct ProxyRunner {
    var configPath: String
    var agentSocket: String?
    var workers: Int
    var outboundPort: UInt16
    var inboundPort: UInt16
    var drainTime: Duration = .seconds(600)
    /// Each workload gets its own ADS stream and configuration (node id from this template).
    var perWorkloadXDSNodeID: String?
    /// The hot-upgrade socket; nil: this proxy cannot be upgraded in place.
    var upgradeSocket: String?
    /// Take over from the proxy serving on `upgradeSocket` instead of binding anew.
    var takeover = false
    var upgradeSettings = UpgradeSettings()

    /// Loads the bootstrap or exits with every problem named by its field path.
    static func loadOrExit(_ path: String, options: TranslationOptions) -> LoadedBootstrap {
        do {
            return try BootstrapLoader.load(path: path, options: options)
        } catch let issues as ConfigIssues {
            FileHandle.standardError.write(Data("\(path): configuration rejected:\n\(issues)\n".utf8))
            exit(1)
        } catch {
            FileHandle.standardError.write(Data("\(path): \(error)\n".utf8))
            exit(1)
        }
    }

    /// Runs until a signal or `/quitquitquit`; `beforeShutdown` runs first on the way out.
    func run(logger: Logger, shutdown: Support.ShutdownSignal, beforeShutdown: () -> Void = {}) async throws {
        MemoryAllocator.keepFreedMemory()
        let options = TranslationOptions(outboundCapturePort: outboundPort, inboundCapturePort: inboundPort)
        let loaded = Self.loadOrExit(configPath, options: options)
        for warning in loaded.warnings { logger.warning("\(warning)") }
        let upgradeListener = try takeover ? nil : claimUpgradeSocket()
        let handover = try beginTakeover(logger: logger)
        let inherited = handover.map { InheritedSockets($0.inheritance.listeners) }
        let server = ProxyServer(
            configuration: loaded.configuration,
            workerThreads: workers,
            placement: agentSocket == nil ? .proxyNamespace : .perWorkload,
            waitsForDynamicConfiguration: loaded.xds != nil,
            drainTime: drainTime,
            inherited: inherited,
            logger: logger)
        // Started before any xDS configuration is applied: clusters added by an update need
        // the started cluster manager.
        try await server.start()

        var xds: (client: ADSClient, task: Task<Void, Never>)?
        var workloadXDS: WorkloadXDS?
        if let xdsConfiguration = loaded.xds, let template = perWorkloadXDSNodeID {
            workloadXDS = WorkloadXDS(
                template: xdsConfiguration, nodeIDTemplate: template, staticConfiguration: loaded.configuration,
                options: options, server: server, inherited: handover?.inheritance.workloadXDS ?? [:], logger: logger)
            server.markDynamicConfigurationReady()
            logger.info("xDS per workload", metadata: ["server": "\(xdsConfiguration.server)", "node": "\(template)"])
        }
        let workloadHost = ProxyWorkloadHost(server: server, xds: workloadXDS)
        // Started once the admin API is up; created first so configuration updates reach it.
        let agentClient = agentSocket.map {
            AgentClient(
                socketPath: $0, host: workloadHost,
                serviceAddresses: loaded.configuration.serviceAddresses, logger: logger)
        }
        if let xdsConfiguration = loaded.xds, workloadXDS == nil {
            let client = ADSClient(
                configuration: xdsConfiguration, staticConfiguration: loaded.configuration, options: options,
                logger: logger,
                apply: { configuration in
                    await server.apply(configuration)
                    agentClient?.publishServiceAddresses(configuration.serviceAddresses)
                },
                initialized: {
                    server.markDynamicConfigurationReady()
                    logger.info("initial xDS configuration applied")
                })
            if let state = handover?.inheritance.xds {
                try await client.restore(JSONDecoder().decode(XDSHandoverState.self, from: state))
                logger.info("xDS state taken over from the previous process")
            }
            xds = (client, Task { await client.run() })
            logger.info("xDS", metadata: [
                "server": "\(xdsConfiguration.server)", "protocol": "\(xdsConfiguration.wireProtocol.rawValue)",
            ])
        }

        for (workload, namespace) in handover?.inheritance.workloads ?? [] {
            try workloadHost.addWorkload(workload.identity, namespace: namespace, inbound: workload.inbound)
        }

        var admin: AdminServer?
        if let adminConfig = loaded.configuration.admin {
            let context = AdminContext(proxy: server, bootstrap: loaded, startTime: Date(), xds: xds?.client.dump) {
                shutdown.trigger("/quitquitquit")
            }
            admin = try await AdminServer.start(
                address: adminConfig.address, context: context, logger: logger, inheritedDescriptor: handover?.inheritance.admin,
                accepting: handover == nil)
            logger.info("admin listening", metadata: ["address": "\(admin!.boundAddress)"])
        }
        for (name, addresses) in server.hostListenerAddresses {
            logger.info("listener serving", metadata: ["listener": "\(name)", "addresses": "\(addresses)"])
        }
        var agentDescriptor: CInt?
        var upgradeSocket = upgradeListener
        if let handover {
            let outcome = try await completeTakeover(handover, server: server, admin: admin, logger: logger)
            agentDescriptor = handover.inheritance.agent
            upgradeSocket = handover.inheritance.upgradeListener
            logger.info("took over from the previous process", metadata: [
                "adopted": "\(outcome.adopted)", "build": "\(handover.inheritance.build)",
            ])
        }
        agentClient?.start(adopting: agentDescriptor, agentVersion: handover?.inheritance.agentVersion ?? 1)
        let handedOver = Mutex(false)
        var coordinator: UpgradeCoordinator?
        if let upgradeSocket {
            let participant = RunningProxyParticipant(agent: agentClient, admin: admin, xds: xds?.client, workloadXDS: workloadXDS)
            coordinator = UpgradeCoordinator(
                listener: upgradeSocket, server: server, participant: participant, settings: upgradeSettings, logger: logger
            ) { _ in
                handedOver.withLock { $0 = true }
                shutdown.trigger("handed over to the new process")
            }
            coordinator?.start()
        }
        logger.info("proxy ready", metadata: ["pid": "\(getpid())"])

        let reason = await shutdown.wait()
        logger.info("shutting down", metadata: ["reason": "\(reason)"])
        coordinator?.stop()
        if handedOver.withLock({ $0 }) {
            // Connections that could not move (half-closed, still connecting) finish here first.
            let deadline = ContinuousClock.now + drainTime
            while server.openConnections > 0, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(100))
            }
        } else {
            beforeShutdown()
        }
        xds?.task.cancel()
        workloadXDS?.stopAll()
        agentClient?.stop()
        await admin?.shutdown()
        await server.shutdown()
    }
}

extension ProxyRunner {
    /// Binds the upgrade socket, unless another proxy is serving on it: two proxies must not
    /// both think they own the node (the new one is started with `--takeover`).
    private func claimUpgradeSocket() throws -> SeqpacketSocket? {
        guard let upgradeSocket else { return nil }
        if (try? SeqpacketSocket.connect(path: upgradeSocket)) != nil {
            throw ValidationErrorMessage("a proxy is already serving on \(upgradeSocket); start this one with --takeover to replace it")
        }
        return try SeqpacketSocket.listen(path: upgradeSocket)
    }

    private func beginTakeover(logger: Logger) throws -> (takeover: Takeover, inheritance: Takeover.Inheritance)? {
        guard takeover else { return nil }
        guard let upgradeSocket else { throw ValidationErrorMessage("--takeover needs the upgrade socket (--upgrade-socket or --agent-socket)") }
        let (takeover, inheritance) = try Takeover.begin(socketPath: upgradeSocket, settings: upgradeSettings, logger: logger)
        logger.info("taking over", metadata: [
            "listeners": "\(inheritance.listeners.count)", "workloads": "\(inheritance.workloads.count)",
            "from build": "\(inheritance.build)",
        ])
        return (takeover, inheritance)
    }

    /// Serving every inherited listener now: report ready, then adopt the connections the
    /// previous process hands over and continue its counters.
    private func completeTakeover(
        _ handover: (takeover: Takeover, inheritance: Takeover.Inheritance), server: ProxyServer, admin: AdminServer?,
        logger: Logger
    ) async throws -> Takeover.Outcome {
        let inherited = server.inherited!
        for rejected in inherited.rejected {
            logger.warning("inherited descriptor is not a listening TCP socket; closed", metadata: ["socket": "\(rejected)"])
        }
        for unclaimed in inherited.closeUnclaimed() {
            logger.warning("inherited listening socket not in this configuration; closed", metadata: ["socket": "\(unclaimed)"])
        }
        try handover.takeover.ready(listeners: inherited.claimed, workloads: handover.inheritance.workloads.count)
        let stats = server.stats
        let outcome = await handover.takeover.receiveConnections(
            startAccepting: {
                await server.setAccepting(true)
                await admin?.setAccepting(true)
            },
            adopt: { record, downstream, upstream in try await server.adopt(record, downstream: downstream, upstream: upstream) },
            absorbCounters: { stats.absorb($0) })
        for failure in outcome.failures { logger.warning("connection not adopted", metadata: ["reason": "\(failure)"]) }
        if outcome.rolledBack {
            // Everything this process holds is also held by the previous one, which serves it
            // again; exiting closes only this process's copies.
            logger.error("the previous process rolled the upgrade back; exiting", metadata: ["reason": "\(outcome.error ?? "")"])
            exit(1)
        }
        if let error = outcome.error {
            logger.warning("previous process gone before the end of the hand-over; serving what was handed over", metadata: [
                "error": "\(error)",
            ])
        }
        return outcome
    }
}

/// What the running proxy hands over besides the data path.
struct RunningProxyParticipant: UpgradeParticipant {
    let agent: AgentClient?
    let admin: AdminServer?
    let xds: ADSClient?
    let workloadXDS: WorkloadXDS?

    func suspendAgent() -> CInt? { agent?.suspend() }
    func resumeAgent() { agent?.resume() }
    var agentVersion: UInt16 { agent?.agentVersion ?? 1 }
    func releaseAgent() { agent?.release() }
    var adminDescriptor: CInt? { admin?.descriptor }
    func setAdminAccepting(_ accepting: Bool) async { await admin?.setAccepting(accepting) }
    func releaseAdmin() async { await admin?.release() }

    func xdsState() -> Data? {
        guard let xds else { return nil }
        return try? JSONEncoder().encode(XDSHandoverState(xds.dump.current))
    }

    func workloadXDSStates() -> [String: Data] { workloadXDS?.states() ?? [:] }
}

/// Serves the agent's workloads with the proxy server.
struct ProxyWorkloadHost: WorkloadHost {
    let server: ProxyServer
    let xds: WorkloadXDS?

    func addWorkload(_ identity: WorkloadIdentity, namespace: NetworkNamespace, inbound: InboundDelivery) throws {
        if let xds {
            try Support.blocking { try await xds.attach(identity, namespace: namespace, inbound: inbound) }
        } else {
            try Support.blocking { try await server.addWorkload(identity, namespace: namespace, inbound: inbound) }
        }
    }

    func removeWorkload(id: String) {
        xds?.stop(id)
        _ = try? Support.blocking { await server.removeWorkload(id: id) }
    }

    func retainWorkloads(_ ids: Set<String>) {
        let server = self.server
        for status in server.workloadStatuses where !ids.contains(status.identity.id) {
            removeWorkload(id: status.identity.id)
        }
    }
}

/// Per-workload xDS: every workload gets an ADS stream of its own, speaking for it (node id and
/// metadata from the workload's identity), so an Istio-style control plane computes its own
/// configuration, as it would for its sidecar. Capture rules are installed only once the
/// workload's initial configuration (its capture listeners) is in place.
final class WorkloadXDS: Sendable {
    private let template: XDSConfiguration
    private let nodeIDTemplate: String
    private let staticConfiguration: ProxyConfiguration
    private let options: TranslationOptions
    private let server: ProxyServer
    private let logger: Logger
    private let clients = NIOLockedValueBox<[String: (client: ADSClient, task: Task<Void, Never>)]>([:])
    /// Per-workload xDS state handed over by the previous process, used once per workload.
    private let inherited: NIOLockedValueBox<[String: Data]>
    /// How long enrollment waits for a workload's first configuration.
    private let initialTimeout: Duration = .seconds(20)

    init(
        template: XDSConfiguration, nodeIDTemplate: String, staticConfiguration: ProxyConfiguration,
        options: TranslationOptions, server: ProxyServer, inherited: [String: Data] = [:], logger: Logger
    ) {
        self.inherited = NIOLockedValueBox(inherited)
        self.template = template
        self.nodeIDTemplate = nodeIDTemplate
        self.staticConfiguration = staticConfiguration
        self.options = options
        self.server = server
        self.logger = logger
    }

    func attach(_ identity: WorkloadIdentity, namespace: NetworkNamespace, inbound: InboundDelivery) async throws {
        stop(identity.id)
        let configuration = template.forWorkload(identity, nodeIDTemplate: nodeIDTemplate)
        let ready = AsyncStream<Void>.makeStream()
        let server = self.server
        let id = identity.id
        let client = ADSClient(
            configuration: configuration, staticConfiguration: staticConfiguration, options: options, logger: logger,
            apply: { configuration in await server.applyWorkloadConfiguration(id: id, configuration) },
            initialized: { ready.continuation.yield(()) })
        if let state = inherited.withLockedValue({ $0.removeValue(forKey: id) }) {
            // Taken over: serve the configuration the previous process had, at once.
            try await client.restore(JSONDecoder().decode(XDSHandoverState.self, from: state))
        }
        clients.withLockedValue { $0[id] = (client, Task { await client.run() }) }
        let arrived = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                for await _ in ready.stream { return true }
                return false
            }
            group.addTask { [initialTimeout] in
                try? await Task.sleep(for: initialTimeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            ready.continuation.finish()
            return first
        }
        if !arrived {
            logger.warning("no initial xDS configuration yet; serving the static configuration", metadata: [
                "workload": "\(id)", "node": "\(configuration.node.id)",
            ])
        }
        try await server.addWorkload(identity, namespace: namespace, inbound: inbound, ownConfiguration: staticConfiguration)
    }

    func stop(_ id: String) {
        clients.withLockedValue { $0.removeValue(forKey: id) }?.task.cancel()
    }

    func stopAll() {
        for entry in clients.withLockedValue({ clients in
            defer { clients = [:] }
            return Array(clients.values)
        }) {
            entry.task.cancel()
        }
    }

    /// Every workload's accepted xDS state, encoded for a hot upgrade.
    func states() -> [String: Data] {
        clients.withLockedValue { $0 }.compactMapValues { try? JSONEncoder().encode(XDSHandoverState($0.client.dump.current)) }
    }
}

