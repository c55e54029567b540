import Foundation
import Logging
import NIOConcurrencyHelpers
import SluiceAdmin
import SluiceConfig
import SluiceLinux
import SluiceModel
import SluiceNode
import SluiceProxy

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
        let options = TranslationOptions(outboundCapturePort: outboundPort, inboundCapturePort: inboundPort)
        let loaded = Self.loadOrExit(configPath, options: options)
        for warning in loaded.warnings { logger.warning("\(warning)") }
        let server = ProxyServer(
            configuration: loaded.configuration,
            workerThreads: workers,
            placement: agentSocket == nil ? .proxyNamespace : .perWorkload,
            waitsForDynamicConfiguration: loaded.xds != nil,
            drainTime: drainTime,
            logger: logger)
        try await server.start()

        var xds: (client: ADSClient, task: Task<Void, Never>)?
        var workloadXDS: WorkloadXDS?
        if let xdsConfiguration = loaded.xds, let template = perWorkloadXDSNodeID {
            workloadXDS = WorkloadXDS(
                template: xdsConfiguration, nodeIDTemplate: template, staticConfiguration: loaded.configuration,
                options: options, server: server, logger: logger)
            server.markDynamicConfigurationReady()
            logger.info("xDS per workload", metadata: ["server": "\(xdsConfiguration.server)", "node": "\(template)"])
        }
        // Started once the admin API is up; created first so configuration updates reach it.
        let agentClient = agentSocket.map {
            AgentClient(
                socketPath: $0, host: ProxyWorkloadHost(server: server, xds: workloadXDS),
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
            xds = (client, Task { await client.run() })
            logger.info("xDS", metadata: [
                "server": "\(xdsConfiguration.server)", "protocol": "\(xdsConfiguration.wireProtocol.rawValue)",
            ])
        }

        var admin: AdminServer?
        if let adminConfig = loaded.configuration.admin {
            let context = AdminContext(proxy: server, bootstrap: loaded, startTime: Date(), xds: xds?.client.dump) {
                shutdown.trigger("/quitquitquit")
            }
            admin = try await AdminServer.start(address: adminConfig.address, context: context, logger: logger)
            logger.info("admin listening", metadata: ["address": "\(admin!.boundAddress)"])
        }
        agentClient?.start()
        for (name, addresses) in server.hostListenerAddresses {
            logger.info("listener serving", metadata: ["listener": "\(name)", "addresses": "\(addresses)"])
        }
        logger.info("proxy ready", metadata: ["pid": "\(getpid())"])

        let reason = await shutdown.wait()
        logger.info("shutting down", metadata: ["reason": "\(reason)"])
        beforeShutdown()
        xds?.task.cancel()
        workloadXDS?.stopAll()
        agentClient?.stop()
        await admin?.shutdown()
        await server.shutdown()
    }
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
    private let clients = NIOLockedValueBox<[String: Task<Void, Never>]>([:])
    /// How long enrollment waits for a workload's first configuration.
    private let initialTimeout: Duration = .seconds(20)

    init(
        template: XDSConfiguration, nodeIDTemplate: String, staticConfiguration: ProxyConfiguration,
        options: TranslationOptions, server: ProxyServer, logger: Logger
    ) {
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
        clients.withLockedValue { $0[id] = Task { await client.run() } }
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
        clients.withLockedValue { $0.removeValue(forKey: id) }?.cancel()
    }

    func stopAll() {
        for task in clients.withLockedValue({ clients in
            defer { clients = [:] }
            return Array(clients.values)
        }) {
            task.cancel()
        }
    }
}
