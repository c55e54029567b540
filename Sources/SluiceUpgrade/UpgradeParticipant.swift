import Foundation

/// What the hot upgrade needs from the parts of the proxy outside the data path: the agent
/// link, the admin listener and the xDS state. The proxy's assembly implements it.
public protocol UpgradeParticipant: Sendable {
    /// Stops reading agent messages (between two messages) and returns the agent link's
    /// descriptor, still owned here; nil without an agent link.
    func suspendAgent() -> CInt?
    /// Reads agent messages again (the upgrade was rolled back).
    func resumeAgent()
    /// The protocol version of the agent session (its hello's answer).
    var agentVersion: UInt16 { get }
    /// Forgets the agent link without closing the connection: the new process owns it.
    func releaseAgent()
    /// The admin listener's descriptor, still owned here; nil without an admin listener.
    var adminDescriptor: CInt? { get }
    /// Stops or resumes accepting admin connections (the socket stays open).
    func setAdminAccepting(_ accepting: Bool) async
    /// Closes this process's admin listener without removing its socket file.
    func releaseAdmin() async
    /// The xDS state the new process starts from, encoded; nil without xDS.
    func xdsState() -> Data?
    /// Each workload's own xDS state (per-workload xDS), encoded, by workload id.
    func workloadXDSStates() -> [String: Data]
}

/// Runs blocking work (socket waits) on a thread of its own, so that no Swift concurrency
/// thread blocks on the upgrade socket.
func offloaded<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// Runs async work from a plain thread and waits for it.
func waitFor<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let done = DispatchSemaphore(value: 0)
    let box = Box<Result<T, any Error>>()
    Task {
        do { box.value = .success(try await body()) } catch { box.value = .failure(error) }
        done.signal()
    }
    done.wait()
    return try box.value!.get()
}

private final class Box<T>: @unchecked Sendable {
    // Written by the task before it signals, read after the wait.
    var value: T?
}
