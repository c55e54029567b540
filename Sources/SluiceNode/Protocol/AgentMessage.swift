import Foundation
import SluiceInterception
import SluiceLinux
import SluiceModel

/// Messages of the agent socket. The proxy and the CLI connect to the agent; the first
/// message says which role the peer plays.
public enum AgentMessage: Equatable, Sendable {
    /// Peer → agent, first message on a connection.
    case hello(Hello)
    /// Agent → peer, answer to `hello`.
    case helloAck(HelloAck)
    /// Either direction: the request `requestID` (or the connection) failed.
    case failure(Failure)

    // Agent → proxy; the proxy answers each with `ack`.
    /// Carries the workload's namespace descriptor.
    case addWorkload(AddWorkload)
    case deleteWorkload(DeleteWorkload)
    /// Starts the replay of every enrolled workload after (re)connection.
    case snapshotBegin(SnapshotBegin)
    /// Ends the replay: the proxy drops workloads the snapshot did not name.
    case snapshotEnd
    /// Either direction: the answer to one request (agent → proxy requests and the proxy's
    /// `serviceAddresses`).
    case ack(Ack)
    /// Proxy → agent (protocol 2): the service addresses its configuration now routes; sent when
    /// they change. The agent answers with `ack`.
    case serviceAddresses(ServiceAddresses)

    // CLI → agent; the agent answers each with `result`.
    case enroll(EnrollRequest)
    case unenroll(UnenrollRequest)
    case listWorkloads
    case result(ControlResult)

    /// Protocol version spoken by this build. 2 added `serviceAddresses` and the addresses in
    /// `Hello`; a record's header carries the version that introduced its type, so a peer of
    /// version 1 understands every record it can understand.
    public static let version: UInt16 = 2

    /// The protocol version that introduced this message type.
    var introducedIn: UInt16 {
        if case .serviceAddresses = self { return 2 }
        return 1
    }

    /// The wire type code.
    var typeCode: UInt16 {
        switch self {
        case .hello: return 1
        case .helloAck: return 2
        case .failure: return 3
        case .addWorkload: return 10
        case .deleteWorkload: return 11
        case .snapshotBegin: return 12
        case .snapshotEnd: return 13
        case .ack: return 14
        case .serviceAddresses: return 15
        case .enroll: return 20
        case .unenroll: return 21
        case .listWorkloads: return 22
        case .result: return 23
        }
    }

    /// How many descriptors a message of this type must carry.
    var descriptorCount: Int {
        if case .addWorkload = self { return 1 }
        return 0
    }
}

/// The role a connecting peer plays.
public enum PeerRole: String, Codable, Sendable {
    case proxy
    case control
}

public struct Hello: Codable, Equatable, Sendable {
    public var role: PeerRole
    public var pid: Int32
    /// A proxy's service addresses at connection time (protocol 2; nil from older proxies).
    public var serviceAddresses: [SocketEndpoint]?

    public init(role: PeerRole, pid: Int32 = getpid(), serviceAddresses: [SocketEndpoint]? = nil) {
        self.role = role
        self.pid = pid
        self.serviceAddresses = serviceAddresses
    }
}

public struct HelloAck: Codable, Equatable, Sendable {
    public var agentPID: Int32
    /// The agent's protocol version; nil from version 1 agents, which know no `serviceAddresses`.
    public var version: UInt16?

    public init(agentPID: Int32, version: UInt16? = AgentMessage.version) {
        self.agentPID = agentPID
        self.version = version
    }
}

public struct Failure: Codable, Equatable, Sendable {
    public var message: String
}

public struct AddWorkload: Codable, Equatable, Sendable {
    public var identity: WorkloadIdentity
    /// Identity of the namespace whose descriptor travels with the message.
    public var namespace: NetworkNamespace.Identity
    /// nil from agents older than the field: redirected.
    public var inbound: InboundDelivery?

    public init(identity: WorkloadIdentity, namespace: NetworkNamespace.Identity, inbound: InboundDelivery? = nil) {
        self.identity = identity
        self.namespace = namespace
        self.inbound = inbound
    }
}

/// The service addresses (VIP:port) a proxy's configuration routes, all of them.
public struct ServiceAddresses: Codable, Equatable, Sendable {
    public var addresses: [SocketEndpoint]

    public init(addresses: [SocketEndpoint]) {
        self.addresses = addresses
    }
}

public struct DeleteWorkload: Codable, Equatable, Sendable {
    public var id: String
}

public struct SnapshotBegin: Codable, Equatable, Sendable {
    public var count: Int
}

public struct Ack: Codable, Equatable, Sendable {
    /// nil when the request succeeded.
    public var error: String?
}

public struct EnrollRequest: Codable, Equatable, Sendable {
    /// Namespace path (`/run/netns/NAME` or `/proc/PID/ns/net`).
    public var netnsPath: String
    public var mode: CaptureModeName
    public var options: CaptureOptions
    /// nil: derived from the namespace name.
    public var identity: WorkloadIdentity?

    public init(netnsPath: String, mode: CaptureModeName, options: CaptureOptions, identity: WorkloadIdentity? = nil) {
        self.netnsPath = netnsPath
        self.mode = mode
        self.options = options
        self.identity = identity
    }
}

public struct UnenrollRequest: Codable, Equatable, Sendable {
    /// A namespace path or a workload id.
    public var workload: String

    public init(workload: String) {
        self.workload = workload
    }
}

public struct ControlResult: Codable, Equatable, Sendable {
    public var error: String?
    public var workloads: [WorkloadRecord]
    public var proxyConnected: Bool
    /// Capture rule counters per workload id, for modes whose rules count (listing only).
    public var counters: [String: [CaptureCounter]]?

    public init(
        error: String? = nil, workloads: [WorkloadRecord] = [], proxyConnected: Bool = false,
        counters: [String: [CaptureCounter]]? = nil
    ) {
        self.error = error
        self.workloads = workloads
        self.proxyConnected = proxyConnected
        self.counters = counters
    }
}
