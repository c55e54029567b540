import ArgumentParser
import Foundation
import SluiceModel
import SluiceNode

/// Resolves `--netns NAME|PATH` to a namespace path.
func namespacePath(_ value: String) -> String {
    value.contains("/") ? value : "/run/netns/\(value)"
}

/// `sluice enroll`.
struct EnrollCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enroll", abstract: "Put a workload (network namespace) behind the shared proxy.")

    @Option(help: "Network namespace name (under /run/netns) or path (/proc/PID/ns/net).")
    var netns: String

    @OptionGroup var capture: CaptureSelection

    @Option(help: "Workload id (default: the namespace name).")
    var id: String?

    @Option(help: "Kubernetes-style namespace of the workload's identity.")
    var namespace = "default"

    @Option(help: "Service account of the workload's identity.")
    var serviceAccount = "default"

    @OptionGroup var socket: AgentSocketOptions

    func run() throws {
        let (captureMode, options) = try capture.parsed(proxyKnowsServices: true)
        let path = namespacePath(netns)
        let identity = WorkloadIdentity(
            id: id ?? (path as NSString).lastPathComponent, namespace: namespace, serviceAccount: serviceAccount)
        let request = EnrollRequest(netnsPath: path, mode: captureMode, options: options, identity: identity)
        let result = try AgentControlClient.send(.enroll(request), socketPath: socket.socketPath)
        if let error = result.error { throw ValidationErrorMessage("enroll \(netns): \(error)") }
        for record in result.workloads { print("\(record.identity.id): \(record.state) (\(record.mode.rawValue))") }
    }

}

/// `sluice unenroll`.
struct UnenrollCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unenroll", abstract: "Release a workload: remove its capture; it talks directly again.")

    @Option(help: "Network namespace name, path, or workload id.")
    var netns: String

    @OptionGroup var socket: AgentSocketOptions

    func run() throws {
        let target = FileManager.default.fileExists(atPath: namespacePath(netns)) ? namespacePath(netns) : netns
        let result = try AgentControlClient.send(.unenroll(UnenrollRequest(workload: target)), socketPath: socket.socketPath)
        if let error = result.error { throw ValidationErrorMessage("unenroll \(netns): \(error)") }
        for record in result.workloads { print("\(record.identity.id): released") }
    }
}

/// `sluice workloads`.
struct WorkloadsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workloads", abstract: "List enrolled workloads with their mode and state.")

    @Flag(help: "Print JSON.")
    var json = false

    @OptionGroup var socket: AgentSocketOptions

    func run() throws {
        let result = try AgentControlClient.send(.listWorkloads, socketPath: socket.socketPath)
        if let error = result.error { throw ValidationErrorMessage(error) }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.dateEncodingStrategy = .iso8601
            print(String(decoding: try encoder.encode(result), as: UTF8.self))
            return
        }
        var rows = [["WORKLOAD", "NETNS", "MODE", "STATE", "EXCLUDED"]]
        for record in result.workloads {
            var state = record.state.description
            if record.state == .captured, !result.proxyConnected { state += " (proxy-disconnected: fail-closed)" }
            let excluded = (record.options.excludePorts.map { "port \($0)" } + record.options.excludeCIDRs.map(\.description))
                .joined(separator: ",")
            rows.append([record.identity.id, record.netnsPath, record.mode.rawValue, state, excluded.isEmpty ? "-" : excluded])
        }
        let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            print(row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces))
        }
        for (workload, counters) in (result.counters ?? [:]).sorted(by: { $0.key < $1.key }) {
            print("\(workload) capture counters:")
            for counter in counters { print("  \(counter.packets) packets \(counter.bytes) bytes  \(counter.rule)") }
        }
        print("proxy: \(result.proxyConnected ? "connected" : "not connected")")
    }
}

/// `--mode`, `--exclude-ports` and `--exclude-cidrs`, parsed with errors naming the flag.
struct CaptureSelection: ParsableArguments {
    @Option(help: "Capture mode: iptables, nftables, tproxy, ebpf, ipvs or none.")
    var mode = "iptables"

    @Option(help: "Comma-separated TCP ports never captured (either direction).")
    var excludePorts = ""

    @Option(help: "Comma-separated outbound destination CIDRs never captured.")
    var excludeCidrs = ""

    @Option(help: "Comma-separated service addresses ADDRESS:PORT or [IPV6]:PORT to capture (--mode ipvs, which has no catch-all; enrolled workloads also get the proxy's service addresses).")
    var services = ""

    @Option(help: "eBPF mode: the workload's cgroup v2 directory (absolute, or relative to the cgroup v2 mount). Default: the agent creates one and moves the namespace's processes into it.")
    var cgroup: String?

    /// `proxyKnowsServices`: a proxy tells the agent its service addresses (enroll), so the
    /// IPVS mode needs no `--services`; without a proxy (`sluice rules`) it does.
    func parsed(proxyKnowsServices: Bool = false) throws -> (CaptureModeName, CaptureOptions) {
        guard let captureMode = CaptureModeName(rawValue: mode) else {
            let known = CaptureModeName.allCases.map(\.rawValue).joined(separator: ", ")
            throw ValidationErrorMessage("--mode \(mode) is not available in this build (available: \(known))")
        }
        let ports = try excludePorts.split(separator: ",").map { item in
            guard let port = UInt16(item.trimmingCharacters(in: .whitespaces)), port > 0 else {
                throw ValidationErrorMessage("--exclude-ports: \"\(item)\" is not a port (1-65535)")
            }
            return port
        }
        let cidrs = try excludeCidrs.split(separator: ",").map { item in
            guard let range = CIDRRange(item.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationErrorMessage("--exclude-cidrs: \"\(item)\" is not an address or CIDR range")
            }
            return range
        }
        let endpoints = try services.split(separator: ",").map { item in
            let text = item.trimmingCharacters(in: .whitespaces)
            guard let endpoint = SocketEndpoint(text), endpoint.port > 0 else {
                throw ValidationErrorMessage("--services: \"\(text)\" is not ADDRESS:PORT (IPv6 as [ADDRESS]:PORT)")
            }
            return endpoint
        }
        if captureMode == .ipvs && endpoints.isEmpty && !proxyKnowsServices {
            throw ValidationErrorMessage("--mode ipvs needs --services ADDRESS:PORT,... here: without a proxy, IPVS captures only listed service addresses")
        }
        if captureMode != .ipvs && !endpoints.isEmpty {
            throw ValidationErrorMessage("--services applies to --mode ipvs only; --mode \(mode) captures every destination")
        }
        if let cgroup {
            guard captureMode == .ebpf else {
                throw ValidationErrorMessage("--cgroup applies to --mode ebpf only (this is --mode \(mode))")
            }
            guard !cgroup.isEmpty, !cgroup.split(separator: "/").contains("..") else {
                throw ValidationErrorMessage("--cgroup: \"\(cgroup)\" is not a cgroup directory path")
            }
        }
        return (captureMode, CaptureOptions(excludePorts: ports, excludeCIDRs: cidrs, services: endpoints, cgroup: cgroup))
    }
}
