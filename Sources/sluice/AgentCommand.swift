import ArgumentParser
import Foundation
import Logging
import SluiceInterception
import SluiceModel
import SluiceNode

/// Options that shape the agent.
struct AgentOptions: ParsableArguments {
    @Option(help: "Directory for the agent's state (enrolled workloads).")
    var stateDir = "/var/lib/sluice"

    @Option(help: "iptables implementation: auto, nft or legacy.")
    var iptablesBackend = "auto"

    func configuration(socketPath: String, stateDir override: String? = nil) throws -> NodeAgent.Configuration {
        let backend: IPTablesBackend
        switch iptablesBackend {
        case "auto": backend = .systemDefault()
        case let name:
            guard let chosen = IPTablesBackend(rawValue: name) else {
                throw ValidationErrorMessage("--iptables-backend must be auto, nft or legacy, not \(name)")
            }
            backend = chosen
        }
        return NodeAgent.Configuration(
            socketPath: socketPath,
            stateDirectory: URL(fileURLWithPath: override ?? stateDir),
            captureMode: { CaptureModes.make($0, iptablesBackend: backend) })
    }
}

/// `sluice agent`: the privileged node agent.
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run the node agent: enroll workloads, install their capture, hand them to the proxy.",
        discussion: "Capture stays installed when the agent stops, so restarting it never releases a workload.")

    @OptionGroup var socket: AgentSocketOptions
    @OptionGroup var agent: AgentOptions
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        try Support.bootstrapLogging(logging.logLevel)
        let logger = Logger(label: "sluice.agent")
        let shutdown = Support.ShutdownSignal()
        let node = NodeAgent(configuration: try agent.configuration(socketPath: socket.socketPath), logger: logger)
        try node.start()
        let reason = await shutdown.wait()
        logger.info("agent stopping; capture stays installed", metadata: ["reason": "\(reason)"])
        node.stop(removeCapture: false)
    }
}
