import ArgumentParser
import Foundation
import SluiceConfig
import SluiceModel

/// `sluice validate`.
struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check an Envoy v3 bootstrap: exit 1 naming every invalid or unsupported field by path.")

    @Option(help: "Envoy v3 bootstrap (YAML or JSON).")
    var config: String

    func run() throws {
        do {
            let loaded = try BootstrapLoader.load(path: config)
            for warning in loaded.warnings { print(warning) }
            let configuration = loaded.configuration
            print("\(config): valid (\(configuration.listeners.count) listeners, \(configuration.clusters.count) clusters)")
        } catch let issues as ConfigIssues {
            for issue in issues.issues { print(issue) }
            let unsupported = issues.issues.filter { $0.kind == .unsupported }.count
            print("\(config): \(issues.issues.count) problem(s), \(unsupported) of them valid Envoy features Sluice does not implement")
            throw ExitCode(1)
        }
    }
}
