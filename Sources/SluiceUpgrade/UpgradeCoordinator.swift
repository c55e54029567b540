import Foundation
import Logging
import SluiceLinux
import SluiceModel
import SluiceProxy
import Synchronization

/// Timers and sizes of a hot upgrade. Every wait is bounded and each one ends as soon as the
/// state it waits for is observed, never after a fixed sleep.
public struct UpgradeSettings: Sendable {
    /// How long a new process may take from its start to serving every inherited listener.
    public var readyTimeout: Duration = .seconds(30)
    /// How long either side waits for any other single message.
    public var stepTimeout: Duration = .seconds(10)
    /// Connections per migration message.
    public var batchSize = 64
    /// The old process's command line without the program, used to start a requested binary
    /// (`--takeover` is added).
    public var arguments: [String] = []
    /// This build's label, for logs and the hello.
    public var build = ""

    public init() {}
}

/// The running proxy's upgrade socket: accepts the new process (or `sluice upgrade`, which
/// asks this process to start the new binary), hands over every listening socket, workload
/// namespace, the agent link, admin listener and xDS state, waits until the new process has
/// bound them all, moves its established connections across, stops accepting and says `done`.
/// Any failure before `done` rolls back: this process keeps serving, nothing lost.
public final class UpgradeCoordinator: Sendable {
    private struct State {
        var handshake = UpgradeHandshake()
        var requester: UpgradeLink?
        var spawned: Process?
        var stopped = false
        /// The link of the hand-over in progress; closing it makes the hand-over fail and roll back.
        var activeLink: UpgradeLink?
    }

    private let listener: SeqpacketSocket
    private let server: ProxyServer
    private let participant: any UpgradeParticipant
    private let settings: UpgradeSettings
    private let logger: Logger
    private let handedOver: @Sendable (UpgradeMessage.Done) -> Void
    private let state = Mutex(State())

    /// - Parameter handedOver: called once the new process owns everything; this process then
    ///   lets its remaining connections finish and exits.
    public init(
        listener: SeqpacketSocket, server: ProxyServer, participant: any UpgradeParticipant, settings: UpgradeSettings,
        logger: Logger, handedOver: @escaping @Sendable (UpgradeMessage.Done) -> Void
    ) {
        listener.setNonBlocking()
        self.listener = listener
        self.server = server
        self.participant = participant
        self.settings = settings
        self.logger = logger
        self.handedOver = handedOver
    }

    /// Starts accepting on the upgrade socket.
    public func start() {
        Thread { self.acceptLoop() }.start()
    }

    /// Stops accepting; the socket stays open and its file stays (a new process may own it).
    public func stop() {
        state.withLock { $0.stopped = true }
    }

    private func acceptLoop() {
        while !state.withLock({ $0.stopped }) {
            guard listener.waitReadable(timeout: .milliseconds(200)) else { continue }
            if state.withLock({ $0.stopped }) { return }
            do {
                guard let socket = try listener.acceptIfPending() else { continue }
                Thread { self.serve(UpgradeLink(socket: socket)) }.start()
            } catch {
                logger.warning("upgrade socket accept failed", metadata: ["error": "\(error)"])
            }
        }
    }

    private func serve(_ link: UpgradeLink) {
        do {
            try link.requireTrustedPeer()
            let (first, descriptors) = try link.receive(waitingFor: "hello or request", timeout: settings.stepTimeout)
            closeAll(descriptors)
            switch first {
            case .request(let request):
                startRequested(request, requester: link)
            case .hello(let hello):
                takeOver(link, hello: hello)
            default:
                throw UpgradeProtocolError.unexpected(expected: "hello or request", got: first.name)
            }
        } catch {
            logger.warning("upgrade connection rejected", metadata: ["error": "\(error)"])
            try? link.send(.refused(.init(reason: "\(error)")))
            link.close()
        }
    }

    // MARK: Starting the new binary

    private func startRequested(_ request: UpgradeMessage.Request, requester: UpgradeLink) {
        let action = state.withLock { $0.handshake.requestReceived(binary: request.binary) }
        guard case .spawn(let binary) = action else {
            if case .refuse(let reason) = action { try? requester.send(.refused(.init(reason: reason))) }
            requester.close()
            return
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = settings.arguments.contains("--takeover") ? settings.arguments : settings.arguments + ["--takeover"]
        process.terminationHandler = { [weak self] process in
            self?.spawnedExited(pid: process.processIdentifier, status: process.terminationStatus)
        }
        // Recorded before the start: a binary that exits at once is reported to the requester.
        state.withLock { state in
            state.requester = requester
            state.spawned = process
        }
        do {
            try process.run()
        } catch {
            fail("cannot start \(binary): \(error)")
            return
        }
        let pid = process.processIdentifier
        state.withLock { $0.handshake.spawned(pid: pid) }
        logger.info("upgrade: started new binary", metadata: ["binary": "\(binary)", "pid": "\(pid)"])
        // The new process must at least connect within the ready timeout.
        let timeout = settings.readyTimeout
        Thread {
            Thread.sleep(forTimeInterval: Double(timeout.components.seconds))
            let waiting = self.state.withLock { state -> Bool in
                if case .awaitingTakeover(pid) = state.handshake.phase { return true }
                return false
            }
            if waiting { self.fail("new process \(pid) did not connect within \(timeout)") }
        }.start()
    }

    private func spawnedExited(pid: Int32, status: Int32) {
        let (current, handedOver, link) = state.withLock {
            ($0.spawned?.processIdentifier == pid, $0.handshake.phase == .handedOver, $0.activeLink)
        }
        // A process of an earlier, already rolled-back upgrade (ended by this one) is no news.
        guard current, !handedOver else { return }
        if let link {
            // The hand-over's own thread notices the closed link and rolls back in order.
            logger.warning("upgrade: new process exited during the hand-over", metadata: ["pid": "\(pid)", "status": "\(status)"])
            link.close()
            return
        }
        fail("new process \(pid) exited with status \(status) before the hand-over completed")
    }

    // MARK: The hand-over

    private func takeOver(_ link: UpgradeLink, hello: UpgradeMessage.Hello) {
        let action = state.withLock { state -> UpgradeHandshake.Action in
            let action = state.handshake.helloReceived(pid: link.peerPID)
            if action == .sendInventory { state.activeLink = link }
            return action
        }
        guard action == .sendInventory else {
            if case .refuse(let reason) = action { try? link.send(.refused(.init(reason: reason))) }
            link.close()
            return
        }
        logger.info("upgrade: new process connected", metadata: ["pid": "\(hello.pid)", "build": "\(hello.build)"])
        let handover = Handover()
        do {
            let server = self.server
            let done = try waitFor { try await server.holdingChanges { try await self.handOver(link, handover) } }
            state.withLock { $0.activeLink = nil }
            logger.info("upgrade: handed over", metadata: ["migrated": "\(done.migrated)", "staying": "\(done.staying)"])
            report(UpgradeMessage.Result(succeeded: true, newPID: hello.pid, migrated: done.migrated, detail: "new process \(hello.pid) serves"))
            handedOver(done)
        } catch {
            // Tell the new process to give everything back before it is ended, so that it never
            // relays a connection this process takes back.
            try? link.send(.refused(.init(reason: "upgrade rolled back: \(error)")))
            link.close()
            let server = self.server
            let reclaimed = (try? waitFor { await handover.reclaim(into: server) }) ?? 0
            if reclaimed > 0 { logger.info("upgrade: connections taken back", metadata: ["count": "\(reclaimed)"]) }
            state.withLock { $0.activeLink = nil }
            fail("hand-over to \(hello.pid) failed: \(error)")
        }
    }

    /// What this process has given away during one hand-over, until the new process confirms
    /// it owns it (`done`): duplicates of every moved connection, kept so that a hand-over that
    /// fails half-way takes them back with nothing lost.
    private final class Handover: @unchecked Sendable {
        // Only touched by the thread running the hand-over.
        var moved: [ExportedConnection] = []

        func reclaim(into server: ProxyServer) async -> Int {
            defer { moved = [] }
            var reclaimed = 0
            for connection in moved {
                if let adopted = try? await server.adopt(
                    connection.record, downstream: connection.downstreamDescriptor, upstream: connection.upstreamDescriptor) {
                    adopted.start()
                    reclaimed += 1
                }
            }
            return reclaimed
        }

        func release() {
            for connection in moved { connection.closeDescriptors() }
            moved = []
        }
    }

    private func handOver(_ link: UpgradeLink, _ handover: Handover) async throws -> UpgradeMessage.Done {
        let agent = participant.suspendAgent()
        let sockets = server.listenerSockets
        let workloads = server.servedWorkloads
        let admin = participant.adminDescriptor
        var inventory = UpgradeMessage.Inventory(
            build: settings.build,
            listeners: sockets.map { .init(workload: $0.workload, listener: $0.listener, namespace: $0.namespace, address: $0.address) },
            workloads: workloads.map { .init(identity: $0.identity, namespace: $0.namespace.identity, inbound: $0.inbound) },
            hasAdmin: admin != nil, hasAgent: agent != nil, hasUpgradeListener: true, xds: participant.xdsState())
        inventory.workloadXDS = participant.workloadXDSStates()
        inventory.agentVersion = participant.agentVersion
        var descriptors = sockets.map(\.descriptor) + workloads.map(\.namespace.descriptor)
        if let admin { descriptors.append(admin) }
        if let agent { descriptors.append(agent) }
        descriptors.append(listener.descriptor)
        try link.send(.inventory(inventory), descriptors: descriptors)

        let timeouts = (ready: settings.readyTimeout, step: settings.stepTimeout)
        let ready = try await offloaded { try link.receive(waitingFor: "ready", timeout: timeouts.ready) }
        guard case .ready(let served) = ready.message else {
            closeAll(ready.descriptors)
            throw UpgradeProtocolError.unexpected(expected: "ready", got: ready.message.name)
        }
        logger.info("upgrade: new process serves", metadata: ["listeners": "\(served.listeners)", "workloads": "\(served.workloads)"])
        var action = state.withLock { $0.handshake.readyReceived() }
        var migrated = 0
        while action == .stopAcceptingAndMigrate || action == .migrateNextBatch {
            if action == .stopAcceptingAndMigrate {
                // One process accepts at a time: NIO's channels assume they are a socket's only
                // reader (an event another process consumed first trips its debug assertions).
                // The new process starts with `done`; connections arriving until then wait in
                // the shared accept queues, and until then it owns nothing this process cannot
                // take back.
                await server.parkListeners()
                await participant.setAdminAccepting(false)
            }
            let batch = await server.exportConnections(limit: settings.batchSize)
            handover.moved += batch
            if !batch.isEmpty { migrated += try await send(batch, over: link, timeout: timeouts.step) }
            action = state.withLock { [limit = settings.batchSize] in $0.handshake.batchMoved(count: batch.count, limit: limit) }
        }
        try link.send(.counters(.init(server.stats.counterValues())))
        let done = UpgradeMessage.Done(migrated: migrated, staying: server.openConnections)
        try link.send(.done(done))
        // From here on the new process owns the shared sockets; closing ours sends nothing.
        handover.release()
        stop()
        participant.releaseAgent()
        await server.releaseListeners()
        await participant.releaseAdmin()
        return done
    }

    /// Sends one batch and waits until it is adopted (adopted connections wait in the new
    /// process until `done`, so that until then this process can still take them back).
    private func send(_ batch: [ExportedConnection], over link: UpgradeLink, timeout: Duration) async throws -> Int {
        try link.send(
            .connections(.init(connections: batch.map(\.record))),
            descriptors: batch.flatMap { [$0.downstreamDescriptor, $0.upstreamDescriptor] })
        let answer = try await offloaded { try link.receive(waitingFor: "adopted", timeout: timeout) }
        guard case .adopted(let adopted) = answer.message else {
            closeAll(answer.descriptors)
            throw UpgradeProtocolError.unexpected(expected: "adopted", got: answer.message.name)
        }
        for failure in adopted.failures { logger.warning("upgrade: connection not adopted", metadata: ["reason": "\(failure)"]) }
        return adopted.adopted
    }

    // MARK: Outcome

    /// Rolls back whatever the failed upgrade had changed and tells the requester. A new
    /// process this one started is ended (one it did not start was told to give up).
    private func fail(_ reason: String) {
        let (action, process) = state.withLock { state in
            (state.handshake.failed(), state.spawned)
        }
        guard case .rollBack(let resumeAccepting, let kill) = action else { return }
        logger.error("upgrade failed; this process keeps serving", metadata: ["reason": "\(reason)"])
        if let kill, let process, process.processIdentifier == kill, process.isRunning {
            Glibc.kill(kill, SIGKILL)
        }
        if resumeAccepting {
            let server = self.server
            let participant = self.participant
            _ = try? waitFor {
                await server.resumeParkedListeners()
                await participant.setAdminAccepting(true)
            }
        }
        participant.resumeAgent()
        report(UpgradeMessage.Result(succeeded: false, newPID: nil, migrated: 0, detail: reason))
    }

    private func report(_ result: UpgradeMessage.Result) {
        let requester = state.withLock { state in
            defer { state.requester = nil; state.spawned = nil }
            return state.requester
        }
        try? requester?.send(.result(result))
        requester?.close()
    }
}
