import Foundation
import Logging
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
        if let xdsConfiguration = loaded.xds {
            let client = ADSClient(
                configuration: xdsConfiguration, staticConfiguration: loaded.configuration, options: options,
                logger: logger,
                apply: { configuration in await server.apply(configuration) },
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
        var agentClient: AgentClient?
        if let agentSocket {
            agentClient = AgentClient(socketPath: agentSocket, host: ProxyWorkloadHost(server: server), logger: logger)
            agentClient?.start()
        }
        for (name, addresses) in server.hostListenerAddresses {
            logger.info("listener serving", metadata: ["listener": "\(name)", "addresses": "\(addresses)"])
        }
        logger.info("proxy ready", metadata: ["pid": "\(getpid())"])

        let reason = await shutdown.wait()
        logger.info("shutting down", metadata: ["reason": "\(reason)"])
        beforeShutdown()
        xds?.task.cancel()
        agentClient?.stop()
        await admin?.shutdown()
        await server.shutdown()
    }
}

/// Serves the agent's workloads with the proxy server.
struct ProxyWorkloadHost: WorkloadHost {
    let server: ProxyServer

    func addWorkload(_ identity: WorkloadIdentity, namespace: NetworkNamespace) throws {
        try Support.blocking { try await server.addWorkload(identity, namespace: namespace) }
    }

    func removeWorkload(id: String) {
        _ = try? Support.blocking { await server.removeWorkload(id: id) }
    }

    func retainWorkloads(_ ids: Set<String>) {
        let server = self.server
        _ = try? Support.blocking {
            for status in server.workloadStatuses where !ids.contains(status.identity.id) {
                await server.removeWorkload(id: status.identity.id)
            }
        }
    }
}
