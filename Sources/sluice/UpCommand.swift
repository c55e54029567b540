import ArgumentParser
import Foundation
import Logging
import SluiceModel
import SluiceNode

/// `sluice up`: agent and proxy together for one machine.
struct UpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Run agent and proxy together in the foreground; on SIGINT/SIGTERM remove every rule installed.")

    @Option(help: "Envoy v3 bootstrap (YAML or JSON).")
    var config: String

    @Option(help: "Event loop threads serving connections.")
    var workers = 1

    @OptionGroup var socket: AgentSocketOptions
    @OptionGroup var agent: AgentOptions
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        try Support.bootstrapLogging(logging.logLevel)
        let logger = Logger(label: "sluice.up")
        let shutdown = Support.ShutdownSignal()
        let stateDir = (socket.socketPath as NSString).deletingLastPathComponent + "/up-state"
        let node = NodeAgent(configuration: try agent.configuration(socketPath: socket.socketPath, stateDir: stateDir), logger: logger)
        // Load the configuration before touching any rule, so a bad file changes nothing.
        _ = ProxyRunner.loadOrExit(config, options: .init())
        try node.start(discardPrevious: true)
        let runner = ProxyRunner(
            configPath: config, agentSocket: socket.socketPath, workers: workers,
            outboundPort: CaptureDefaults.outboundPort, inboundPort: CaptureDefaults.inboundPort)
        do {
            try await runner.run(logger: logger, shutdown: shutdown) {
                node.stop(removeCapture: true)
            }
        } catch {
            node.stop(removeCapture: true)
            throw error
        }
    }
}
