import ArgumentParser
import Foundation
import SluiceUpgrade

/// `sluice upgrade`: replaces the running proxy's binary without dropping a connection.
struct UpgradeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upgrade",
        abstract: "Start a new proxy binary that takes over every socket and connection of the running proxy.",
        discussion: "The running proxy starts BINARY with its own arguments plus --takeover. If the new process does not serve within the timeout, or dies, the running proxy keeps serving.")

    @Option(help: "The new proxy binary.")
    var binary: String

    @Option(help: "The running proxy's upgrade socket.")
    var upgradeSocket = "/run/sluice/upgrade.sock"

    @Option(help: "Seconds to wait for the outcome.")
    var timeoutS = 120

    func run() throws {
        let path = URL(fileURLWithPath: binary).standardizedFileURL.path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw ValidationErrorMessage("--binary \(binary): not an executable file")
        }
        let link = try UpgradeLink.connect(path: upgradeSocket)
        try link.requireTrustedPeer()
        try link.send(.request(.init(binary: path)))
        let (answer, descriptors) = try link.receive(waitingFor: "the upgrade's outcome", timeout: .seconds(timeoutS))
        for fd in descriptors { close(fd) }
        switch answer {
        case .result(let result) where result.succeeded:
            print("upgraded: new proxy pid \(result.newPID.map(String.init) ?? "?"), \(result.migrated) connection(s) migrated")
        case .result(let result):
            throw ValidationErrorMessage("upgrade failed, the running proxy keeps serving: \(result.detail)")
        case .refused(let refusal):
            throw ValidationErrorMessage("upgrade refused: \(refusal.reason)")
        default:
            throw ValidationErrorMessage("unexpected answer from the running proxy: \(answer)")
        }
    }
}
