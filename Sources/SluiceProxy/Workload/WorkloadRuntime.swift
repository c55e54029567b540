import NIOConcurrencyHelpers
import SluiceLinux
import SluiceModel

/// An enrolled workload as the proxy serves it: its namespace, its capture listeners bound
/// inside that namespace (by listener name; configuration updates change them), its stats, and,
/// with per-workload xDS, its own configuration (the scope's tables and clusters).
final class WorkloadRuntime: Sendable {
    let identity: WorkloadIdentity
    let namespace: NetworkNamespace
    let scope: AcceptScope
    let bindings: NIOLockedValueBox<[String: ListenerBinding]>
    let stats: WorkloadStats
    /// Set when the workload has its own configuration (not the proxy's).
    let configuration: NIOLockedValueBox<ProxyConfiguration>?

    init(
        identity: WorkloadIdentity, namespace: NetworkNamespace, scope: AcceptScope, stats: WorkloadStats,
        configuration: ProxyConfiguration?
    ) {
        self.identity = identity
        self.namespace = namespace
        self.scope = scope
        self.bindings = NIOLockedValueBox([:])
        self.stats = stats
        self.configuration = configuration.map { NIOLockedValueBox($0) }
    }

    var status: WorkloadStatus {
        let bindings = self.bindings.withLockedValue { $0 }.sorted { $0.key < $1.key }.map(\.value)
        return WorkloadStatus(
            identity: identity,
            namespace: namespace.identity,
            listeners: bindings.map { binding in
                WorkloadStatus.Listener(
                    name: binding.listener.config.name,
                    capture: binding.listener.config.capture,
                    addresses: binding.boundAddresses.map(\.description))
            },
            connectionsActive: stats.connectionsActive.value,
            connectionsTotal: stats.connectionsTotal.value,
            bytesReceived: stats.bytesReceived.value,
            bytesSent: stats.bytesSent.value)
    }
}

/// What the proxy reports about one workload.
public struct WorkloadStatus: Sendable, Codable, Equatable {
    public struct Listener: Sendable, Codable, Equatable {
        public var name: String
        public var capture: CaptureRole?
        public var addresses: [String]
    }

    public var identity: WorkloadIdentity
    public var namespace: NetworkNamespace.Identity
    public var listeners: [Listener]
    public var connectionsActive: Int64
    public var connectionsTotal: UInt64
    public var bytesReceived: UInt64
    public var bytesSent: UInt64
}
