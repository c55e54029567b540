import Foundation
import SluiceModel

/// An established L4 connection moved between proxy processes: what the new process needs to
/// continue relaying exactly where the old one stopped. The two sockets travel separately (as
/// descriptors); the bytes already read from one side and not yet written to the other travel
/// here, so nothing is lost or repeated.
public struct MigratedConnection: Sendable, Codable, Equatable {
    /// The workload whose capture listener accepted it; nil for a listener in the proxy's own namespace.
    public var workload: String?
    /// The listener that accepted it.
    public var listener: String
    /// The listener whose filter chain routes it (differs after a `use_original_dst` hand-off).
    public var routeListener: String
    public var destination: SocketEndpoint
    public var source: SocketEndpoint
    public var cluster: String
    public var host: SocketEndpoint
    /// Read from the upstream, not yet written to the downstream.
    public var pendingToDownstream: Data
    /// Read from the downstream, not yet written to the upstream.
    public var pendingToUpstream: Data

    public init(
        workload: String?, listener: String, routeListener: String, destination: SocketEndpoint, source: SocketEndpoint,
        cluster: String, host: SocketEndpoint, pendingToDownstream: Data, pendingToUpstream: Data
    ) {
        self.workload = workload
        self.listener = listener
        self.routeListener = routeListener
        self.destination = destination
        self.source = source
        self.cluster = cluster
        self.host = host
        self.pendingToDownstream = pendingToDownstream
        self.pendingToUpstream = pendingToUpstream
    }
}

/// A connection this process let go of: its record and duplicates of both sockets, which the
/// caller sends to the new process and then closes.
public struct ExportedConnection: Sendable {
    public var record: MigratedConnection
    public var downstreamDescriptor: CInt
    public var upstreamDescriptor: CInt

    /// Closes this process's duplicates (after they were sent, or when the upgrade failed).
    public func closeDescriptors() {
        close(downstreamDescriptor)
        close(upstreamDescriptor)
    }
}

/// Why a handed-over connection could not be adopted.
public struct AdoptionError: Error, CustomStringConvertible {
    public var detail: String
    public var description: String { detail }
}
