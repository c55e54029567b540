import Foundation
import Logging
import SluiceLinux
import SluiceModel
import Synchronization

/// What the proxy does with the workloads the agent sends. The executable implements this over
/// the proxy server, so this module never depends on the data path.
public protocol WorkloadHost: Sendable {
    /// Serve `identity` from `namespace`: create its capture listeners inside it.
    func addWorkload(_ identity: WorkloadIdentity, namespace: NetworkNamespace, inbound: InboundDelivery) throws
    func removeWorkload(id: String)
    /// After a snapshot: stop serving every workload not in `ids`.
    func retainWorkloads(_ ids: Set<String>)
}

/// The proxy's link to the agent: connects, says hello as a proxy, applies every workload the
/// agent sends and acks it, tells the agent the service addresses of its configuration (in the
/// hello, then whenever they change), and reconnects with jittered backoff when the agent goes
/// away (the workloads keep being served meanwhile).
public final class AgentClient: Sendable {
    private struct State {
        var socket: AgentConnection?
        var stopped = false
        var connected = false
        /// A hot upgrade asked the reader to stop between two messages.
        var suspended = false
        /// The reader saw `suspended` and is not in the middle of a message.
        var parked = false
        /// The new process owns the connection: stop without shutting it down.
        var released = false
        /// Whether the connected agent understands `serviceAddresses` (protocol 2).
        var agentTakesServiceAddresses = false
        var serviceAddresses: [SocketEndpoint]
        var nextRequestID: UInt32 = 1
    }

    private let socketPath: String
    private let host: any WorkloadHost
    private let logger: Logger
    private let state: Mutex<State>

    /// `serviceAddresses`: those of the configuration the proxy starts with.
    public init(
        socketPath: String, host: any WorkloadHost, serviceAddresses: [SocketEndpoint] = [],
        logger: Logger = Logger(label: "sluice.agent-client")
    ) {
        self.socketPath = socketPath
        self.host = host
        self.logger = logger
        self.state = Mutex(State(serviceAddresses: serviceAddresses))
    }

    public var isConnected: Bool { state.withLock { $0.connected } }

    /// Connects to the agent; with `adopting`, first continues a session a previous proxy
    /// process had already opened (handed over on a hot upgrade).
    /// `agentVersion` is the protocol version the agent answered that session's hello with.
    public func start(adopting descriptor: CInt? = nil, agentVersion: UInt16 = 1) {
        let inherited = descriptor.map { AgentConnection(socket: SeqpacketSocket.adopting($0)) }
        if let inherited {
            state.withLock { state in
                state.socket = inherited
                state.connected = true
                state.agentTakesServiceAddresses = agentVersion >= 2
            }
        }
        Thread { self.run(inherited: inherited) }.start()
    }

    /// The proxy's configuration changed: tells the agent if its service addresses did.
    public func publishServiceAddresses(_ addresses: [SocketEndpoint]) {
        let connection = state.withLock { state -> AgentConnection? in
            guard state.serviceAddresses != addresses else { return nil }
            state.serviceAddresses = addresses
            // Not on a link a hot upgrade has paused or handed over: `resume` sends them.
            guard !state.suspended, !state.released else { return nil }
            return state.agentTakesServiceAddresses ? state.socket : nil
        }
        if let connection { send(addresses, on: connection) }
    }

    private func send(_ addresses: [SocketEndpoint], on connection: AgentConnection) {
        let requestID = state.withLock { state in
            defer { state.nextRequestID &+= 1 }
            return state.nextRequestID
        }
        do {
            try connection.send(.serviceAddresses(ServiceAddresses(addresses: addresses)), requestID: requestID)
            logger.info("service addresses sent to the agent", metadata: ["addresses": "\(addresses)"])
        } catch {
            // The reader sees the broken connection and reconnects; the hello carries them then.
            logger.warning("cannot send service addresses to the agent", metadata: ["error": "\(error)"])
        }
    }

    public func stop() {
        let connection = state.withLock { state in
            state.stopped = true
            return state.released ? nil : state.socket
        }
        connection?.close()
    }

    /// Stops reading agent messages once the current one is handled and returns the link's
    /// descriptor (still owned here), or nil when not connected.
    public func suspend(timeout: Duration = .seconds(5)) -> CInt? {
        state.withLock { $0.suspended = true }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline, !state.withLock({ $0.parked || !$0.connected }) {
            Thread.sleep(forTimeInterval: 0.005)
        }
        return state.withLock { $0.connected && $0.parked ? $0.socket?.socket.descriptor : nil }
    }

    /// Reads agent messages again after `suspend`.
    public func resume() {
        let pending = state.withLock { state -> (AgentConnection, [SocketEndpoint])? in
            state.suspended = false
            guard state.agentTakesServiceAddresses, let socket = state.socket else { return nil }
            return (socket, state.serviceAddresses)
        }
        // Addresses that changed while suspended (sending the same ones again is harmless).
        if let (connection, addresses) = pending { send(addresses, on: connection) }
    }

    /// The protocol version of the agent session, for a process that continues it.
    public var agentVersion: UInt16 { state.withLock { $0.agentTakesServiceAddresses ? 2 : 1 } }

    /// Lets go of the link without closing the connection: another process continues it.
    public func release() {
        state.withLock { state in
            state.released = true
            state.stopped = true
        }
    }

    private func run(inherited: AgentConnection?) {
        var backoff: Duration = .milliseconds(100)
        var inherited = inherited
        while !state.withLock({ $0.stopped }) {
            do {
                let connection: AgentConnection
                if let adopted = inherited {
                    connection = adopted
                    inherited = nil
                    logger.info("continuing the agent session handed over by the previous process")
                } else {
                    connection = try connect()
                }
                backoff = .milliseconds(100)
                try serve(connection)
                if state.withLock({ $0.stopped }) { break }
                logger.warning("agent closed the connection; reconnecting")
            } catch {
                logger.debug("agent link down", metadata: ["error": "\(error)"])
            }
            if state.withLock({ $0.released }) { return }
            state.withLock { $0.connected = false; $0.socket = nil; $0.agentTakesServiceAddresses = false }
            if state.withLock({ $0.stopped }) { return }
            let jitter = Double.random(in: 0.5...1.0)
            Thread.sleep(forTimeInterval: Double(backoff.components.seconds) * jitter
                + Double(backoff.components.attoseconds) * 1e-18 * jitter)
            backoff = min(backoff * 2, .seconds(2))
        }
    }

    private func connect() throws -> AgentConnection {
        let connection = AgentConnection(socket: try SeqpacketSocket.connect(path: socketPath))
        try connection.requireTrustedPeer()
        let announced = state.withLock { $0.serviceAddresses }
        try connection.send(.hello(Hello(role: .proxy, serviceAddresses: announced)), requestID: 0)
        guard let answer = try connection.receive() else { throw AgentProtocolError.unexpected("agent closed during hello") }
        let agentVersion: UInt16
        switch answer.message {
        case .helloAck(let ack):
            agentVersion = ack.version ?? 1
        case .failure(let failure):
            throw AgentError("agent refused the proxy: \(failure.message)")
        default:
            throw AgentProtocolError.unexpected("expected helloAck, got \(answer.message)")
        }
        let (stopped, changedSince) = state.withLock { state -> (Bool, [SocketEndpoint]?) in
            state.socket = connection
            state.connected = true
            state.agentTakesServiceAddresses = agentVersion >= 2
            let current = state.serviceAddresses
            return (state.stopped, state.agentTakesServiceAddresses && current != announced ? current : nil)
        }
        if stopped { connection.close() }
        if let changedSince { send(changedSince, on: connection) }
        logger.info("connected to agent", metadata: ["socket": "\(socketPath)"])
        return connection
    }

    private func serve(_ connection: AgentConnection) throws {
        var snapshot: Set<String>?
        while true {
            // Polling (not a blocking read) lets a hot upgrade stop the reader between two
            // messages without shutting down a socket the new process is about to share.
            let (suspended, stopped) = state.withLock { state -> (Bool, Bool) in
                state.parked = state.suspended
                return (state.suspended, state.stopped)
            }
            if stopped { return }
            if suspended {
                Thread.sleep(forTimeInterval: 0.01)
                continue
            }
            guard connection.socket.waitReadable(timeout: .milliseconds(100)) else { continue }
            // Suspended while waiting: the message stays queued for whoever reads next.
            if state.withLock({ $0.suspended || $0.stopped }) { continue }
            guard let frame = try connection.receive() else { break }
            var error: String?
            switch frame.message {
            case .snapshotBegin:
                snapshot = []
            case .addWorkload(let request):
                do {
                    let namespace = try NetworkNamespace(takingOwnershipOf: frame.descriptors[0])
                    guard namespace.identity == request.namespace else {
                        throw AgentError("namespace descriptor is \(namespace.identity), expected \(request.namespace)")
                    }
                    try host.addWorkload(request.identity, namespace: namespace, inbound: request.inbound ?? .redirected)
                    snapshot?.insert(request.identity.id)
                } catch let failure {
                    error = "\(failure)"
                }
            case .deleteWorkload(let request):
                host.removeWorkload(id: request.id)
            case .snapshotEnd:
                host.retainWorkloads(snapshot ?? [])
                snapshot = nil
            case .ack(let ack):
                // The agent's answer to a `serviceAddresses` update; nothing to answer back.
                if let error = ack.error {
                    logger.error("agent could not apply the service addresses", metadata: ["error": "\(error)"])
                }
                continue
            default:
                throw AgentProtocolError.unexpected("agent sent \(frame.message) to a proxy")
            }
            try connection.send(.ack(Ack(error: error)), requestID: frame.requestID)
        }
    }
}
