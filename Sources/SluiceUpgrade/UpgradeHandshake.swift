/// The running (old) proxy's side of a hot upgrade, as a value type that turns events into
/// actions: at most one upgrade at a time, a fixed order of steps, and on any failure before
/// the hand-over completed a rollback that leaves this process serving as before.
public struct UpgradeHandshake: Sendable, Equatable {
    public enum Phase: Sendable, Equatable {
        case idle
        /// A new binary was started (pid), or one is expected to connect on its own.
        case awaitingTakeover(spawned: Int32?)
        /// Listeners, namespaces and state sent; the new process is binding.
        case inventorySent(spawned: Int32?)
        /// The new process has bound every listener; this one moves its connections, still
        /// accepting until `stoppedAccepting` (then it moves what it accepted meanwhile).
        case migrating(spawned: Int32?, stoppedAccepting: Bool)
        /// Everything handed over; this process only finishes what stayed and exits.
        case handedOver
    }

    public enum Action: Sendable, Equatable {
        case none
        case refuse(reason: String)
        case spawn(binary: String)
        case sendInventory
        case migrateNextBatch
        /// Stop accepting, then move the connections accepted meanwhile.
        case stopAcceptingAndMigrate
        /// Send the counters and `done` (the new process starts accepting and relaying), then
        /// let go of every shared socket.
        case finish
        /// Undo what was done: accept again if this process had stopped, take the agent link
        /// back, and end the new process if this one started it.
        case rollBack(resumeAccepting: Bool, kill: Int32?)
    }

    public private(set) var phase: Phase = .idle

    public init() {}

    /// `sluice upgrade --binary` asked for an upgrade.
    public mutating func requestReceived(binary: String) -> Action {
        guard phase == .idle else { return .refuse(reason: busyReason) }
        phase = .awaitingTakeover(spawned: nil)
        return .spawn(binary: binary)
    }

    /// The requested binary runs as `pid`.
    public mutating func spawned(pid: Int32) {
        if case .awaitingTakeover = phase { phase = .awaitingTakeover(spawned: pid) }
    }

    /// A new process said hello (`pid` from its socket credentials).
    public mutating func helloReceived(pid: Int32?) -> Action {
        switch phase {
        case .idle:
            phase = .inventorySent(spawned: nil)
            return .sendInventory
        case .awaitingTakeover(let spawned) where spawned == nil || spawned == pid:
            phase = .inventorySent(spawned: spawned)
            return .sendInventory
        default:
            return .refuse(reason: busyReason)
        }
    }

    public mutating func readyReceived() -> Action {
        guard case .inventorySent(let spawned) = phase else { return .none }
        phase = .migrating(spawned: spawned, stoppedAccepting: false)
        return .migrateNextBatch
    }

    /// The last export moved `count` connections, at most `limit`. While this process still
    /// accepts, a full batch means more are waiting; a partial one means the backlog is moved:
    /// stop accepting and move what arrived meanwhile. After that, move until nothing is left.
    public mutating func batchMoved(count: Int, limit: Int) -> Action {
        guard case .migrating(let spawned, let stoppedAccepting) = phase else { return .none }
        if stoppedAccepting {
            if count > 0 { return .migrateNextBatch }
            phase = .handedOver
            return .finish
        }
        if count >= limit { return .migrateNextBatch }
        phase = .migrating(spawned: spawned, stoppedAccepting: true)
        return .stopAcceptingAndMigrate
    }

    /// The new process died, timed out, broke the protocol, or could not be started.
    public mutating func failed() -> Action {
        switch phase {
        case .idle, .handedOver:
            return .none
        case .awaitingTakeover(let spawned), .inventorySent(let spawned):
            phase = .idle
            return .rollBack(resumeAccepting: false, kill: spawned)
        case .migrating(let spawned, let stoppedAccepting):
            phase = .idle
            return .rollBack(resumeAccepting: stoppedAccepting, kill: spawned)
        }
    }

    private var busyReason: String {
        phase == .handedOver ? "this proxy has already handed over to a new process" : "an upgrade is already running"
    }
}
