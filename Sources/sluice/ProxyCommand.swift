import ArgumentParser
import Foundation
import SluiceUpgrade
import Logging
import SluiceConfig
import SluiceModel

/// `sluice proxy`: the shared per-node proxy.
struct ProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy", abstract: "Run the shared per-node proxy from an Envoy v3 bootstrap file.")

    @Option(help: "Envoy v3 bootstrap (YAML or JSON).")
    var config: String

    @Option(help: "Agent socket; with it, capture listeners are created inside each enrolled workload.")
    var agentSocket: String?

    @Option(help: "Event loop threads serving connections (Envoy's --concurrency).")
    var workers = 1

    @Option(help: "Listeners on this port capture workloads' outbound traffic.")
    var outboundPort: UInt16 = CaptureDefaults.outboundPort

    @Option(help: "Listeners on this port capture workloads' inbound traffic.")
    var inboundPort: UInt16 = CaptureDefaults.inboundPort

    @Option(help: "Seconds a removed or replaced listener's connections may continue (Envoy's --drain-time-s).")
    var drainTimeS = 600

    @Flag(help: "Give every enrolled workload its own ADS stream and configuration (the bootstrap's dynamic_resources per workload).")
    var xdsPerWorkload = false

    @Option(help: "Node id of a workload's ADS stream: {ip} {ips} {name} {namespace} {id} {serviceAccount}.")
    var xdsNodeId = XDSConfiguration.istioNodeIDTemplate

    @Option(help: "Hot-upgrade socket (default: upgrade.sock beside the agent socket; none without an agent socket).")
    var upgradeSocket: String?

    @Flag(help: "Take over every socket and connection from the proxy serving on the upgrade socket.")
    var takeover = false

    @Option(help: "Seconds a new process may take to serve every inherited listener before the upgrade is rolled back.")
    var upgradeReadyTimeoutS = 30

    @Option(help: "Seconds either side of an upgrade waits for any other step.")
    var upgradeStepTimeoutS = 10

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        try Support.bootstrapLogging(logging.logLevel)
        var settings = UpgradeSettings()
        settings.readyTimeout = .seconds(upgradeReadyTimeoutS)
        settings.stepTimeout = .seconds(upgradeStepTimeoutS)
        settings.arguments = Array(CommandLine.arguments.dropFirst())
        settings.build = BuildInfo.label
        let runner = ProxyRunner(
            configPath: config, agentSocket: agentSocket, workers: workers, outboundPort: outboundPort, inboundPort: inboundPort,
            drainTime: .seconds(drainTimeS), perWorkloadXDSNodeID: xdsPerWorkload ? xdsNodeId : nil,
            upgradeSocket: upgradeSocket ?? agentSocket.map { ($0 as NSString).deletingLastPathComponent + "/upgrade.sock" },
            takeover: takeover, upgradeSettings: settings)
        try await runner.run(logger: Logger(label: "sluice.proxy"), shutdown: Support.ShutdownSignal())
    }
}
