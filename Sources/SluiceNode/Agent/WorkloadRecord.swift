import Foundation
import SluiceInterception
import SluiceLinux
import SluiceModel

/// Where an enrolled workload's capture stands.
public enum WorkloadState: Codable, Equatable, Sendable, CustomStringConvertible {
    /// Enrolled; capture starts once a proxy has created the workload's listeners.
    case waitingForProxy
    /// Capture rules installed and a proxy serves the workload.
    case captured
    /// The last attempt failed; nothing is captured.
    case failed(String)

    public var description: String {
        switch self {
        case .waitingForProxy: return "waiting-for-proxy"
        case .captured: return "captured"
        case .failed(let reason): return "failed: \(reason)"
        }
    }
}

/// An enrolled workload as the agent records it (and persists it across restarts).
public struct WorkloadRecord: Codable, Equatable, Sendable {
    public var identity: WorkloadIdentity
    public var netnsPath: String
    public var namespace: NetworkNamespace.Identity
    public var mode: CaptureModeName
    public var options: CaptureOptions
    public var state: WorkloadState
    public var enrolledAt: Date
    /// For modes that capture per service: the proxies' service addresses its capture was last
    /// installed with, so a restarted agent verifies and repairs against them before a proxy
    /// is back. nil for other modes (and in state written before the field existed).
    public var proxyServiceAddresses: [SocketEndpoint]?

    /// What the capture mode needs to install or remove this workload's rules.
    public var captureTarget: CaptureTarget {
        CaptureTarget(netnsPath: netnsPath, options: options, workloadID: identity.id, serviceAddresses: proxyServiceAddresses ?? [])
    }

    /// The message asking a proxy to serve this workload from `namespace`.
    func addWorkload(in namespace: NetworkNamespace) -> AddWorkload {
        AddWorkload(identity: identity, namespace: namespace.identity, inbound: mode.inboundDelivery)
    }
}

/// The agent's enrolled workloads, saved to a JSON file after every change so a restarted
/// agent knows what it had installed.
final class WorkloadRegistry: Sendable {
    let stateFile: URL

    init(stateDirectory: URL) {
        stateFile = stateDirectory.appendingPathComponent("workloads.json")
    }

    func load() throws -> [WorkloadRecord] {
        guard FileManager.default.fileExists(atPath: stateFile.path) else { return [] }
        let data = try Data(contentsOf: stateFile)
        do {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            return try decoder.decode([WorkloadRecord].self, from: data)
        } catch {
            throw RegistryError(file: stateFile.path, detail: "\(error)")
        }
    }

    /// Writes atomically (temporary file, then rename) so a crash never leaves half a file.
    func save(_ records: [WorkloadRecord]) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        let data = try encoder.encode(records)
        try FileManager.default.createDirectory(
            at: stateFile.deletingLastPathComponent(), withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
        try data.write(to: stateFile, options: .atomic)
    }
}

/// A state file that cannot be read back.
struct RegistryError: Error, CustomStringConvertible {
    var file: String
    var detail: String
    var description: String { "cannot read agent state \(file): \(detail)" }
}
