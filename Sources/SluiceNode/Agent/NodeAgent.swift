import Foundation
import Logging
import SluiceInterception
import SluiceLinux
import SluiceModel
import Synchronization

/// The node agent: enrolls workloads, installs their capture once a proxy serves them, tells
/// every connected proxy about them (namespace descriptors over the agent socket), and after a
/// restart repairs what its state file says it had installed.
///
/// When the proxy dies, capture rules stay: redirected connections are refused (fail-closed),
/// so traffic never silently bypasses the proxy. The agent notices at once (the proxy's socket
/// closes), reports `proxy-disconnected`, and replays every workload when a proxy reconnects.
public final class NodeAgent: Sendable {
    public struct Configuration: Sendable {
        public var socketPath: String
        public var stateDirectory: URL
        /// How long to wait for a proxy's answer.
        public var proxyTimeout: Duration
        public var captureMode: @Sendable (CaptureModeName) -> any CaptureMode

        public init(
            socketPath: String = "/run/sluice/agent.sock",
            stateDirectory: URL = URL(fileURLWithPath: "/var/lib/sluice"),
            proxyTimeout: Duration = .seconds(30),
            captureMode: @escaping @Sendable (CaptureModeName) -> any CaptureMode = { CaptureModes.make($0) }
        ) {
            self.socketPath = socketPath
            self.stateDirectory = stateDirectory
            self.proxyTimeout = proxyTimeout
            self.captureMode = captureMode
        }
    }

    private struct State {
        var records: [String: WorkloadRecord] = [:]
        var namespaces: [String: NetworkNamespace] = [:]
        var proxies: [ObjectIdentifier: ProxySession] = [:]
        /// What each connected proxy last said its service addresses are.
        var serviceAddresses: [ObjectIdentifier: [SocketEndpoint]] = [:]
        var listener: SeqpacketSocket?
    }

    let configuration: Configuration
    let logger: Logger
    private let registry: WorkloadRegistry
    private let state = Mutex(State())
    /// Serializes enrollment, removal and proxy replays; each may wait on proxies.
    private let operations = NSLock()
    /// Applies the proxies' service address updates one after the other, off their readers.
    let serviceUpdates = DispatchQueue(label: "sluice.agent.service-addresses")

    public init(configuration: Configuration, logger: Logger = Logger(label: "sluice.agent")) {
        self.configuration = configuration
        self.logger = logger
        self.registry = WorkloadRegistry(stateDirectory: configuration.stateDirectory)
    }

    /// Repairs capture from the state file (or, with `discardPrevious`, removes whatever it
    /// recorded), then serves the agent socket.
    public func start(discardPrevious: Bool = false) throws {
        if discardPrevious {
            for record in try registry.load() {
                try? configuration.captureMode(record.mode).remove(record.captureTarget)
            }
            try registry.save([])
        }
        try restore()
        let listener = try SeqpacketSocket.listen(path: configuration.socketPath, mode: 0o600)
        state.withLock { $0.listener = listener }
        Thread { self.acceptLoop(listener) }.start()
        logger.info("agent listening", metadata: ["socket": "\(configuration.socketPath)"])
    }

    /// Stops serving. With `removeCapture`, every workload's rules are removed and forgotten
    /// (`sluice up`); otherwise they stay so capture survives the agent's restart.
    public func stop(removeCapture: Bool) {
        let (listener, proxies) = state.withLock { state in
            defer { state.listener = nil }
            return (state.listener, Array(state.proxies.values))
        }
        listener?.shutdown()
        unlink(configuration.socketPath)
        operations.withLock {
            if removeCapture {
                for record in state.withLock({ Array($0.records.values) }) {
                    do {
                        try configuration.captureMode(record.mode).remove(record.captureTarget)
                    } catch {
                        logger.error("cannot remove capture", metadata: ["workload": "\(record.identity.id)", "error": "\(error)"])
                    }
                }
                state.withLock { $0.records = [:]; $0.namespaces = [:] }
                try? registry.save([])
            }
        }
        for proxy in proxies { proxy.close(reason: "agent stopping") }
    }

    public var proxyConnected: Bool { state.withLock { !$0.proxies.isEmpty } }

    // MARK: Restart reconciliation

    private func restore() throws {
        var records = try registry.load()
        var kept: [WorkloadRecord] = []
        for index in records.indices {
            let record = records[index]
            guard let namespace = try? NetworkNamespace(path: record.netnsPath), namespace.identity == record.namespace else {
                logger.warning("workload namespace is gone; forgetting it", metadata: [
                    "workload": "\(record.identity.id)", "netns": "\(record.netnsPath)",
                ])
                continue
            }
            if record.state == .captured {
                do {
                    if try configuration.captureMode(record.mode).verify(record.captureTarget) != .installed {
                        try installCapture(&records[index])
                        logger.info("repaired capture", metadata: ["workload": "\(record.identity.id)"])
                    }
                } catch {
                    records[index].state = .failed("repair after restart: \(error)")
                }
            }
            kept.append(records[index])
            state.withLock {
                $0.records[record.identity.id] = records[index]
                $0.namespaces[record.identity.id] = namespace
            }
        }
        try registry.save(kept)
    }

    // MARK: Control requests

    func enroll(_ request: EnrollRequest) -> ControlResult {
        operations.withLock {
            do {
                let record = try enrollLocked(request)
                return result(error: nil, only: record.identity.id)
            } catch {
                return result(error: "\(error)", only: nil)
            }
        }
    }

    private func enrollLocked(_ request: EnrollRequest) throws -> WorkloadRecord {
        let namespace: NetworkNamespace
        do {
            namespace = try NetworkNamespace(path: request.netnsPath)
        } catch {
            throw AgentError("network namespace \(request.netnsPath) not found: \(error)")
        }
        var identity = request.identity ?? WorkloadIdentity(id: (request.netnsPath as NSString).lastPathComponent)
        if identity.addresses.isEmpty { identity.addresses = (try? namespace.interfaceAddresses()) ?? [] }
        let others = state.withLock { Array($0.records.values) }
        if let clash = others.first(where: { $0.namespace == namespace.identity && $0.identity.id != identity.id }) {
            throw AgentError("namespace \(request.netnsPath) is already enrolled as \(clash.identity.id)")
        }
        if let existing = others.first(where: { $0.identity.id == identity.id }) {
            if existing.namespace == namespace.identity, existing.mode == request.mode, existing.options == request.options,
               existing.state == .captured {
                // Same enrollment again: make sure the rules are really there.
                var again = existing
                try installCapture(&again)
                state.withLock { $0.records[identity.id] = again }
                try persist()
                return again
            }
            // A changed mode or options (or a recreated namespace): take the old capture away first.
            if existing.namespace == namespace.identity {
                try configuration.captureMode(existing.mode).remove(existing.captureTarget)
            }
        }
        var record = WorkloadRecord(
            identity: identity, netnsPath: request.netnsPath, namespace: namespace.identity, mode: request.mode,
            options: request.options, state: .waitingForProxy, enrolledAt: Date())
        state.withLock {
            $0.records[identity.id] = record
            $0.namespaces[identity.id] = namespace
        }
        if !state.withLock({ $0.proxies.isEmpty }) {
            attach(&record, namespace: namespace, to: state.withLock { Array($0.proxies.values) })
            if case .failed(let reason) = record.state {
                state.withLock {
                    $0.records[identity.id] = nil
                    $0.namespaces[identity.id] = nil
                }
                for proxy in state.withLock({ Array($0.proxies.values) }) {
                    _ = try? proxy.request(.deleteWorkload(DeleteWorkload(id: identity.id)), timeout: configuration.proxyTimeout)
                }
                try persist()
                throw AgentError(reason)
            }
            state.withLock { $0.records[identity.id] = record }
        }
        try persist()
        logger.info("workload enrolled", metadata: ["workload": "\(identity.id)", "state": "\(record.state)"])
        return record
    }

    /// Hands the workload to `proxies`; once all of them serve it, installs its capture. The
    /// outcome is the record's new state.
    private func attach(_ record: inout WorkloadRecord, namespace: NetworkNamespace, to proxies: [ProxySession]) {
        for proxy in proxies {
            do {
                let ack = try proxy.request(
                    .addWorkload(record.addWorkload(in: namespace)),
                    descriptors: [namespace.descriptor], timeout: configuration.proxyTimeout)
                if let error = ack.error {
                    record.state = .failed("proxy pid \(proxy.peerPID) cannot serve the workload: \(error)")
                    return
                }
            } catch {
                record.state = .failed("\(error)")
                return
            }
        }
        do {
            try installCapture(&record)
            record.state = .captured
        } catch {
            record.state = .failed("installing \(record.mode.rawValue) capture: \(error)")
        }
    }

    func unenroll(_ request: UnenrollRequest) -> ControlResult {
        operations.withLock {
            let records = state.withLock { Array($0.records.values) }
            let byPath = (try? NetworkNamespace(path: request.workload)).map(\.identity)
            guard let record = records.first(where: { $0.identity.id == request.workload || $0.netnsPath == request.workload
                || $0.namespace == byPath })
            else {
                return result(error: "no enrolled workload \(request.workload)", only: nil)
            }
            do {
                try configuration.captureMode(record.mode).remove(record.captureTarget)
            } catch {
                return result(error: "cannot remove capture: \(error)", only: record.identity.id)
            }
            for proxy in state.withLock({ Array($0.proxies.values) }) {
                do {
                    _ = try proxy.request(.deleteWorkload(DeleteWorkload(id: record.identity.id)), timeout: configuration.proxyTimeout)
                } catch {
                    logger.warning("proxy did not confirm removal", metadata: ["workload": "\(record.identity.id)", "error": "\(error)"])
                }
            }
            state.withLock {
                $0.records[record.identity.id] = nil
                $0.namespaces[record.identity.id] = nil
            }
            do { try persist() } catch { return result(error: "\(error)", only: nil) }
            logger.info("workload unenrolled", metadata: ["workload": "\(record.identity.id)"])
            return ControlResult(error: nil, workloads: [record], proxyConnected: proxyConnected)
        }
    }

    func list() -> ControlResult {
        // After a proxy's replay, not in the middle of it: "proxy connected" then means served.
        operations.withLock { listLocked() }
    }

    private func listLocked() -> ControlResult {
        var listing = result(error: nil, only: nil)
        var counters: [String: [CaptureCounter]] = [:]
        for record in listing.workloads {
            let values = (try? configuration.captureMode(record.mode).counters(record.captureTarget)) ?? []
            if !values.isEmpty { counters[record.identity.id] = values }
        }
        listing.counters = counters.isEmpty ? nil : counters
        return listing
    }

    private func result(error: String?, only id: String?) -> ControlResult {
        let records = state.withLock { Array($0.records.values) }
            .filter { id == nil || $0.identity.id == id }
            .sorted { $0.identity.id < $1.identity.id }
        return ControlResult(error: error, workloads: records, proxyConnected: proxyConnected)
    }

    /// The record's capture target with the processes of every connected proxy and the
    /// service addresses they know (with no proxy connected, those it was last installed with).
    private func captureTarget(_ record: WorkloadRecord) -> CaptureTarget {
        var target = record.captureTarget
        let (pids, addresses) = state.withLock { state in
            (state.proxies.values.map(\.peerPID), state.proxies.keys.map { state.serviceAddresses[$0] ?? [] })
        }
        target.proxyPIDs = pids.sorted()
        if !pids.isEmpty {
            var seen = Set<SocketEndpoint>()
            target.serviceAddresses = addresses.joined().sorted { $0.description < $1.description }.filter { seen.insert($0).inserted }
        }
        return target
    }

    /// Installs the record's capture (idempotent) and remembers the service addresses used.
    private func installCapture(_ record: inout WorkloadRecord) throws {
        let mode = configuration.captureMode(record.mode)
        let target = captureTarget(record)
        try mode.install(target)
        record.proxyServiceAddresses = mode.capturesServiceAddresses ? target.serviceAddresses : nil
    }

    private func persist() throws {
        try registry.save(state.withLock { Array($0.records.values) }.sorted { $0.identity.id < $1.identity.id })
    }

    // MARK: Proxies

    /// Replays every workload to a newly connected proxy, then starts capture for those that
    /// were waiting for one (and again for modes that follow the proxies).
    func proxyConnected(_ session: ProxySession, serviceAddresses: [SocketEndpoint]) {
        operations.withLock {
            state.withLock { state in
                state.proxies[ObjectIdentifier(session)] = session
                // An update that overtook this replay is newer than the hello's addresses.
                if state.serviceAddresses[ObjectIdentifier(session)] == nil {
                    state.serviceAddresses[ObjectIdentifier(session)] = serviceAddresses
                }
            }
            logger.info("proxy connected", metadata: ["pid": "\(session.peerPID)"])
            let entries = state.withLock { state in
                state.records.values.sorted { $0.identity.id < $1.identity.id }.compactMap { record in
                    state.namespaces[record.identity.id].map { (record, $0) }
                }
            }
            do {
                _ = try session.request(.snapshotBegin(SnapshotBegin(count: entries.count)), timeout: configuration.proxyTimeout)
                for (record, namespace) in entries {
                    var updated = record
                    let ack = try session.request(
                        .addWorkload(record.addWorkload(in: namespace)),
                        descriptors: [namespace.descriptor], timeout: configuration.proxyTimeout)
                    if let error = ack.error {
                        updated.state = .failed("proxy cannot serve the workload: \(error)")
                    } else if record.state != .captured || Self.followsProxies(configuration.captureMode(record.mode)) {
                        do {
                            try installCapture(&updated)
                            updated.state = .captured
                        } catch {
                            updated.state = .failed("installing \(record.mode.rawValue) capture: \(error)")
                        }
                    }
                    state.withLock { $0.records[record.identity.id] = updated }
                }
                _ = try session.request(.snapshotEnd, timeout: configuration.proxyTimeout)
                try persist()
            } catch {
                logger.error("snapshot replay failed", metadata: ["pid": "\(session.peerPID)", "error": "\(error)"])
                session.close(reason: "snapshot replay failed: \(error)")
            }
        }
    }

    /// A proxy's service addresses changed: reinstall (idempotently) the capture of every
    /// captured workload whose mode captures per service and was installed with other
    /// addresses, then answer the proxy.
    func proxyServiceAddressesChanged(_ session: ProxySession, _ addresses: [SocketEndpoint], requestID: UInt32) {
        let problems = operations.withLock { () -> [String] in
            guard !session.isClosed else { return [] }
            state.withLock { $0.serviceAddresses[ObjectIdentifier(session)] = addresses }
            var problems: [String] = []
            for var record in state.withLock({ Array($0.records.values) }).sorted(by: { $0.identity.id < $1.identity.id })
            where record.state == .captured && configuration.captureMode(record.mode).capturesServiceAddresses {
                guard captureTarget(record).serviceAddresses != record.proxyServiceAddresses ?? [] else { continue }
                do {
                    try installCapture(&record)
                    state.withLock { $0.records[record.identity.id] = record }
                    logger.info("service addresses reprogrammed", metadata: [
                        "workload": "\(record.identity.id)", "addresses": "\(record.proxyServiceAddresses ?? [])",
                    ])
                } catch {
                    problems.append("\(record.identity.id): \(error)")
                    logger.error("cannot reprogram service addresses", metadata: ["workload": "\(record.identity.id)", "error": "\(error)"])
                }
            }
            do { try persist() } catch { problems.append("\(error)") }
            return problems
        }
        try? session.connection.send(
            .ack(Ack(error: problems.isEmpty ? nil : problems.joined(separator: "; "))), requestID: requestID)
    }

    /// Whether a mode's capture depends on the connected proxies, so it is installed again when
    /// one connects.
    private static func followsProxies(_ mode: any CaptureMode) -> Bool {
        mode.followsProxyProcesses || mode.capturesServiceAddresses
    }

    func proxyDisconnected(_ session: ProxySession, reason: String) {
        state.withLock {
            $0.proxies[ObjectIdentifier(session)] = nil
            $0.serviceAddresses[ObjectIdentifier(session)] = nil
        }
        logger.warning("proxy disconnected; capture stays (fail-closed)", metadata: ["pid": "\(session.peerPID)", "reason": "\(reason)"])
    }
}

/// An agent operation that failed, with the reason for the operator.
struct AgentError: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}
