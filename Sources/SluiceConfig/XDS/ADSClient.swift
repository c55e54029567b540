import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SluiceModel
import SluiceXDSTypes
import Synchronization

/// The aggregated discovery stream to the management server: one gRPC bidirectional stream
/// (SotW or Delta) carrying every resource type, reopened with jittered exponential backoff
/// whenever it ends. The configuration in force stays while the server is away.
public final class ADSClient: Sendable {
    /// What xDS delivered, for the admin API.
    public let dump = XDSDumpStore()
    private let configuration: XDSConfiguration
    let engine: XDSEngine
    private let logger: Logger

    /// - Parameters:
    ///   - apply: receives every new complete configuration (static plus dynamic).
    ///   - initialized: called once, when the initial clusters (warmed) and listeners arrived.
    public init(
        configuration: XDSConfiguration,
        staticConfiguration: ProxyConfiguration,
        options: TranslationOptions = TranslationOptions(),
        logger: Logger = Logger(label: "sluice.xds"),
        apply: @escaping @Sendable (ProxyConfiguration) async -> Void,
        initialized: @escaping @Sendable () -> Void
    ) {
        self.configuration = configuration
        self.logger = logger
        self.engine = XDSEngine(
            configuration: configuration, staticConfiguration: staticConfiguration, options: options, dump: dump,
            logger: logger, apply: apply, initialized: initialized)
    }

    /// Keeps a stream open until the calling task is cancelled.
    public func run() async {
        do {
            var config = HTTP2ClientTransport.Posix.Config.defaults
            config.backoff = .init(
                initial: configuration.backoffBase, max: configuration.backoffMax, multiplier: 2, jitter: 0.2)
            let transport = try HTTP2ClientTransport.Posix(
                target: target, transportSecurity: .plaintext, config: config)
            try await withGRPCClient(transport: transport) { client in
                let ads = Envoy_Service_Discovery_V3_AggregatedDiscoveryService.Client(wrapping: client)
                let base = self.configuration.backoffBase
                let cap = self.configuration.backoffMax
                var delay = base
                while !Task.isCancelled {
                    if await self.stream(ads) { delay = base }
                    try await Task.sleep(for: delay * Double.random(in: 0.5...1.0))
                    delay = min(delay * 2, cap)
                }
            }
        } catch is CancellationError {
            return
        } catch {
            logger.error("xDS client stopped", metadata: ["error": "\(error)"])
        }
    }

    private var target: any ResolvableTarget {
        switch configuration.server {
        case .tcp(let endpoint):
            let host = endpoint.address.description
            if endpoint.address.isV4 {
                return ResolvableTargets.IPv4(addresses: [.init(host: host, port: Int(endpoint.port))])
            }
            return ResolvableTargets.IPv6(addresses: [.init(host: host, port: Int(endpoint.port))])
        case .unixSocket(let path):
            return ResolvableTargets.UnixDomainSocket.unixDomainSocket(path: path)
        }
    }

    /// Istio's responses exceed gRPC's 4 MiB default; Envoy accepts them, so must we.
    private var callOptions: CallOptions {
        var options = CallOptions.defaults
        options.maxRequestMessageBytes = 1 << 30
        options.maxResponseMessageBytes = 1 << 30
        return options
    }

    /// One stream, until it ends. Returns whether any response arrived (which resets backoff).
    private func stream<Transport: ClientTransport>(
        _ ads: Envoy_Service_Discovery_V3_AggregatedDiscoveryService.Client<Transport>
    ) async -> Bool {
        let (requests, continuation) = AsyncStream.makeStream(of: XDSEngine.Outgoing.self)
        await engine.streamStarted { continuation.yield($0) }
        let progressed = Atomic(false)
        let engine = self.engine
        do {
            switch configuration.wireProtocol {
            case .stateOfTheWorld:
                try await ads.streamAggregatedResources(options: callOptions) { writer in
                    for await outgoing in requests {
                        if case .sotw(let request) = outgoing { try await writer.write(request) }
                    }
                } onResponse: { response in
                    for try await message in response.messages {
                        progressed.store(true, ordering: .relaxed)
                        await engine.receive(message)
                    }
                }
            case .delta:
                try await ads.deltaAggregatedResources(options: callOptions) { writer in
                    for await outgoing in requests {
                        if case .delta(let request) = outgoing { try await writer.write(request) }
                    }
                } onResponse: { response in
                    for try await message in response.messages {
                        progressed.store(true, ordering: .relaxed)
                        await engine.receive(message)
                    }
                }
            }
            logger.warning("xDS stream closed by the server; reconnecting", metadata: ["server": "\(configuration.server)"])
        } catch is CancellationError {
            // Shutting down: nothing failed and nothing reconnects.
        } catch {
            logger.warning("xDS stream failed; reconnecting", metadata: ["server": "\(configuration.server)", "error": "\(error)"])
        }
        continuation.finish()
        await engine.streamEnded()
        return progressed.load(ordering: .relaxed)
    }
}
