import ArgumentParser

/// The `sluice` command: argument parsing and assembly only.
@main
struct Sluice: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "Transparent traffic interception for unmodified workloads, with one shared xDS-ready proxy per node.",
        subcommands: [
            ProxyCommand.self, AgentCommand.self, UpCommand.self, EnrollCommand.self, UnenrollCommand.self,
            WorkloadsCommand.self, ValidateCommand.self, RulesCommand.self, CompareModesCommand.self, UpgradeCommand.self,
        ])
}

/// Options every command that talks to the agent shares.
struct AgentSocketOptions: ParsableArguments {
    @Option(name: .customLong("socket"), help: "The agent socket.")
    var socketPath = "/run/sluice/agent.sock"
}

/// Logging options.
struct LoggingOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"
}
