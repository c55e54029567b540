import ArgumentParser
import SluiceInterception
import SluiceModel

/// `sluice rules`: a capture mode's rules without agent or proxy, for a proxy that runs inside
/// the workload itself (an Envoy sidecar, say) and for checking what a mode installs.
struct RulesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "Install, remove or verify a capture mode's rules in a namespace directly (no agent, no proxy).")

    @Argument(help: "install, remove or verify")
    var action: String

    @Option(help: "Network namespace name (under /run/netns) or path.")
    var netns: String

    @OptionGroup var capture: CaptureSelection

    func run() throws {
        let (mode, options) = try capture.parsed()
        guard mode != .ebpf else {
            // Its programs live as descriptors of the process that attached them.
            throw ValidationErrorMessage("--mode ebpf has no standalone rules: its programs stay attached only while the agent that loaded them runs; use sluice enroll")
        }
        let target = CaptureTarget(netnsPath: namespacePath(netns), options: options)
        let capture = CaptureModes.make(mode)
        switch action {
        case "install": try capture.install(target)
        case "remove": try capture.remove(target)
        case "verify":
            let result = try capture.verify(target)
            print(result)
            if result != .installed { throw ExitCode(1) }
        default: throw ValidationErrorMessage("unknown action \(action): use install, remove or verify")
        }
    }
}
