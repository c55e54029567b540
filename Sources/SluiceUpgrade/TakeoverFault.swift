import Foundation

/// Failure injection for the hot-upgrade tests: with `SLUICE_TAKEOVER_FAULT=<action>-<step>` in
/// its environment (`kill` or `hang`; steps below), a new process dies by SIGKILL or stops
/// responding at that step, as a crashing or wedged binary would. Without the variable these
/// checks do nothing.
public enum TakeoverStep: String, Sendable, CaseIterable {
    /// Connected to the upgrade socket, nothing sent yet.
    case connected
    /// The inventory (listening sockets, namespaces, state) received.
    case inventory
    /// Every inherited listener bound, `ready` not yet sent.
    case bound
    /// `ready` sent, no connection adopted yet.
    case ready
    /// Part of the first batch of connections adopted, not yet acknowledged.
    case adopting

    /// Applies the injected fault for this step, if any.
    public func checkpoint() {
        guard let fault = ProcessInfo.processInfo.environment["SLUICE_TAKEOVER_FAULT"] else { return }
        if fault == "kill-\(rawValue)" {
            kill(getpid(), SIGKILL)
        } else if fault == "hang-\(rawValue)" {
            while true { sleep(60) }
        }
    }
}
