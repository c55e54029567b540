import Foundation
import SluiceLinux
import SluiceModel
import SluiceProxy

/// Messages of the upgrade socket. The new proxy process (or `sluice upgrade`) connects to the
/// running proxy; every message is JSON in a framed record (`UpgradeWireCodec`), and the
/// descriptors a message carries travel with it, in the order its payload lists them.
public enum UpgradeMessage: Sendable, Equatable {
    /// New process → old: "I take over". First message of a takeover.
    case hello(Hello)
    /// `sluice upgrade` → old: start `binary` as the new process and report the outcome.
    case request(Request)
    /// Old → new process or CLI: no upgrade now (another one runs, or the peer is not allowed).
    case refused(Refusal)
    /// Old → new: every listening socket, workload namespace, the admin and agent sockets and
    /// the xDS state (descriptors: listeners, then workload namespaces, admin, agent, upgrade).
    case inventory(Inventory)
    /// New → old: every inherited listener is bound (accepting once the old process is done).
    case ready(Ready)
    /// Old → new: established connections (descriptors: downstream and upstream of each).
    case connections(ConnectionBatch)
    /// New → old: the last batch was adopted.
    case adopted(Adopted)
    /// Old → new: counter values to continue from.
    case counters(Counters)
    /// Old → new: everything is handed over; the new process owns the agent link and the
    /// upgrade socket from now on.
    case done(Done)
    /// Old → CLI: how the upgrade ended.
    case result(Result)

    public struct Hello: Sendable, Codable, Equatable {
        public var pid: Int32
        public var build: String
        public init(pid: Int32, build: String) { self.pid = pid; self.build = build }
    }

    public struct Request: Sendable, Codable, Equatable {
        public var binary: String
        public init(binary: String) { self.binary = binary }
    }

    public struct Refusal: Sendable, Codable, Equatable {
        public var reason: String
        public init(reason: String) { self.reason = reason }
    }

    public struct Inventory: Sendable, Codable, Equatable {
        public struct Listener: Sendable, Codable, Equatable {
            public var workload: String?
            public var listener: String
            public var namespace: NetworkNamespace.Identity
            public var address: SocketEndpoint
        }

        public struct Workload: Sendable, Codable, Equatable {
            public var identity: WorkloadIdentity
            public var namespace: NetworkNamespace.Identity
            public var inbound: InboundDelivery
        }

        public var build: String
        public var listeners: [Listener]
        public var workloads: [Workload]
        public var hasAdmin: Bool
        public var hasAgent: Bool
        /// The agent protocol version of the handed-over agent session (absent: 1). Fields
        /// added within a protocol version are optional, so a build that lacks them still
        /// hands over to one that has them and back.
        public var agentVersion: UInt16?
        public var hasUpgradeListener: Bool
        /// The xDS state, encoded by the proxy's assembly (opaque here).
        public var xds: Data?
        /// Each workload's own xDS state (per-workload xDS), by workload id.
        public var workloadXDS: [String: Data]?

        /// How many descriptors travel with this inventory.
        public var descriptorCount: Int {
            listeners.count + workloads.count + (hasAdmin ? 1 : 0) + (hasAgent ? 1 : 0) + (hasUpgradeListener ? 1 : 0)
        }
    }

    public struct Ready: Sendable, Codable, Equatable {
        public var listeners: Int
        public var workloads: Int
        public init(listeners: Int, workloads: Int) { self.listeners = listeners; self.workloads = workloads }
    }

    public struct ConnectionBatch: Sendable, Codable, Equatable {
        public var connections: [MigratedConnection]
        public init(connections: [MigratedConnection]) { self.connections = connections }
    }

    public struct Adopted: Sendable, Codable, Equatable {
        public var adopted: Int
        public var failures: [String]
        public init(adopted: Int, failures: [String]) { self.adopted = adopted; self.failures = failures }
    }

    public struct Counters: Sendable, Codable, Equatable {
        public struct Entry: Sendable, Codable, Equatable {
            public var name: StatName
            public var value: UInt64
        }

        public var entries: [Entry]

        public init(_ values: [StatName: UInt64]) {
            entries = values.sorted { $0.key < $1.key }.map { Entry(name: $0.key, value: $0.value) }
        }

        public var values: [StatName: UInt64] {
            Dictionary(entries.map { ($0.name, $0.value) }, uniquingKeysWith: +)
        }
    }

    public struct Done: Sendable, Codable, Equatable {
        /// Connections moved to the new process.
        public var migrated: Int
        /// Connections that stay with the old process until they finish (connecting or half-closed).
        public var staying: Int
        public init(migrated: Int, staying: Int) { self.migrated = migrated; self.staying = staying }
    }

    public struct Result: Sendable, Codable, Equatable {
        public var succeeded: Bool
        public var newPID: Int32?
        public var migrated: Int
        public var detail: String
        public init(succeeded: Bool, newPID: Int32?, migrated: Int, detail: String) {
            self.succeeded = succeeded
            self.newPID = newPID
            self.migrated = migrated
            self.detail = detail
        }
    }

    /// The protocol revision; both processes must speak the same one.
    public static let version: UInt16 = 1

    var typeCode: UInt16 {
        switch self {
        case .hello: return 1
        case .request: return 2
        case .refused: return 3
        case .inventory: return 4
        case .ready: return 5
        case .connections: return 6
        case .adopted: return 7
        case .counters: return 8
        case .done: return 9
        case .result: return 10
        }
    }

    /// How many descriptors a message of this kind must carry.
    var descriptorCount: Int {
        switch self {
        case .inventory(let inventory): return inventory.descriptorCount
        case .connections(let batch): return batch.connections.count * 2
        default: return 0
        }
    }

    var name: String {
        switch self {
        case .hello: return "hello"
        case .request: return "request"
        case .refused: return "refused"
        case .inventory: return "inventory"
        case .ready: return "ready"
        case .connections: return "connections"
        case .adopted: return "adopted"
        case .counters: return "counters"
        case .done: return "done"
        case .result: return "result"
        }
    }
}
