import Foundation
import SluiceModel

/// Where and how one workload's traffic is captured.
public struct CaptureTarget: Sendable, Equatable {
    /// The workload's network namespace (`/run/netns/NAME`, `/proc/PID/ns/net`).
    public var netnsPath: String
    public var options: CaptureOptions
    /// Packets from sockets with this mark are the proxy's own and are never captured.
    public var proxyMark: UInt32
    /// The workload's id (names what a mode creates for it, such as the eBPF mode's cgroup).
    public var workloadID: String
    /// Processes of the proxies serving the workload (from SO_PEERCRED). Modes that hook the
    /// proxy's own sockets (eBPF: sockops, getsockopt on its cgroup) need them; rule-based
    /// modes ignore them.
    public var proxyPIDs: [Int32]
    /// Service addresses (VIP:port) the serving proxies' configuration routes. Modes that
    /// capture per service (IPVS) capture these as well as `options.services`; the others
    /// capture every destination and ignore them.
    public var serviceAddresses: [SocketEndpoint]

    public init(
        netnsPath: String, options: CaptureOptions = CaptureOptions(), proxyMark: UInt32 = CaptureDefaults.proxyMark,
        workloadID: String? = nil, proxyPIDs: [Int32] = [], serviceAddresses: [SocketEndpoint] = []
    ) {
        self.netnsPath = netnsPath
        self.options = options
        self.proxyMark = proxyMark
        self.workloadID = workloadID ?? (netnsPath as NSString).lastPathComponent
        self.proxyPIDs = proxyPIDs
        self.serviceAddresses = serviceAddresses
    }
}

extension CaptureTarget {
    /// Runs one step of installing or reading capture, naming the step and this workload's
    /// namespace in any error that is not already a `CaptureError`.
    func step<T>(_ name: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as CaptureError {
            throw error
        } catch {
            throw CaptureError(netnsPath: netnsPath, step: name, detail: "\(error)")
        }
    }
}

/// What `verify` found.
public enum CaptureVerification: Sendable, Equatable, CustomStringConvertible {
    /// Exactly the rules this mode installs, once.
    case installed
    /// None of this mode's rules.
    case absent
    /// Some rules are missing, extra or different.
    case drifted([String])

    public var description: String {
        switch self {
        case .installed: return "installed"
        case .absent: return "absent"
        case .drifted(let details): return "drifted: " + details.joined(separator: "; ")
        }
    }
}

/// A capture mechanism. Installing twice is the same as installing once; removing takes away
/// everything installing added; `verify` proves which of the two is true.
public protocol CaptureMode: Sendable {
    var name: CaptureModeName { get }
    func install(_ target: CaptureTarget) throws
    func remove(_ target: CaptureTarget) throws
    func verify(_ target: CaptureTarget) throws -> CaptureVerification
    /// Whether the capture hooks the proxy's processes, so `install` must run again (it is
    /// idempotent) whenever a proxy connects.
    var followsProxyProcesses: Bool { get }
    /// Whether the capture covers `CaptureTarget.serviceAddresses`, so `install` must run again
    /// whenever the proxies' service addresses change.
    var capturesServiceAddresses: Bool { get }
    /// Per-rule packet and byte counts, for modes whose rules count.
    func counters(_ target: CaptureTarget) throws -> [CaptureCounter]
}

extension CaptureMode {
    public func counters(_ target: CaptureTarget) throws -> [CaptureCounter] { [] }
    public var followsProxyProcesses: Bool { false }
    public var capturesServiceAddresses: Bool { false }
}

/// How much traffic one capture rule has matched.
public struct CaptureCounter: Codable, Equatable, Sendable {
    public var rule: String
    public var packets: UInt64
    public var bytes: UInt64

    public init(rule: String, packets: UInt64, bytes: UInt64) {
        self.rule = rule
        self.packets = packets
        self.bytes = bytes
    }
}

/// The capture modes this build implements.
public enum CaptureModes {
    /// The mode called `name`; modes written with iptables use `iptablesBackend` (default: the
    /// one `iptables` on PATH uses).
    public static func make(_ name: CaptureModeName, iptablesBackend: IPTablesBackend? = nil) -> any CaptureMode {
        switch name {
        case .iptables: return IPTablesCapture(backend: iptablesBackend ?? .systemDefault())
        case .ebpf: return EBPFCapture.shared
        case .nftables: return NFTablesCapture()
        case .tproxy: return TPROXYCapture(backend: iptablesBackend ?? .systemDefault())
        case .none: return NoCapture()
        case .ipvs: return IPVSCapture()
        }
    }
}

/// A capture operation that failed, naming the workload namespace and the step.
public struct CaptureError: Error, CustomStringConvertible {
    public var netnsPath: String
    public var step: String
    public var detail: String

    public var description: String { "\(netnsPath): \(step): \(detail)" }
}
