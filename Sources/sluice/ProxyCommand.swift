import ArgumentParser
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

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        try Support.bootstrapLogging(logging.logLevel)
        let runner = ProxyRunner(
            configPath: config, agentSocket: agentSocket, workers: workers, outboundPort: outboundPort, inboundPort: inboundPort,
            drainTime: .seconds(drainTimeS), perWorkloadXDSNodeID: xdsPerWorkload ? xdsNodeId : nil)
        try await runner.run(logger: Logger(label: "sluice.proxy"), shutdown: Support.ShutdownSignal())
    }
}
