import Foundation
import Logging
import SluiceLinux
import SluiceModel
import SluiceProxy

/// The new proxy process's side of a hot upgrade: connects to the running proxy's upgrade
/// socket, receives everything it serves, reports ready once it serves every inherited
/// listener, then adopts the connections handed over and continues the counters.
public final class Takeover: Sendable {
    /// What the running process handed over; the descriptors are owned by this process now.
    public struct Inheritance: Sendable {
        public var build: String
        public var listeners: [InheritedListener]
        public var workloads: [(workload: UpgradeMessage.Inventory.Workload, namespace: NetworkNamespace)]
        public var admin: CInt?
        public var agent: CInt?
        public var agentVersion: UInt16
        public var upgradeListener: SeqpacketSocket?
        public var xds: Data?
        public var workloadXDS: [String: Data]
    }

    /// How the hand-over ended, seen from the new process.
    public struct Outcome: Sendable {
        public var adopted: Int
        public var failures: [String]
        /// Nil when the old process went away before saying `done` (it was killed): the new
        /// process serves what it has.
        public var done: UpgradeMessage.Done?
        public var error: String?
        /// The old process rolled the upgrade back and serves everything again: this process
        /// must not serve anything and exits.
        public var rolledBack = false
    }

    private let link: UpgradeLink
    private let settings: UpgradeSettings
    private let logger: Logger

    private init(link: UpgradeLink, settings: UpgradeSettings, logger: Logger) {
        self.link = link
        self.settings = settings
        self.logger = logger
    }

    /// Connects to the running proxy at `socketPath` and receives its inventory.
    public static func begin(socketPath: String, settings: UpgradeSettings, logger: Logger) throws -> (Takeover, Inheritance) {
        let link = try UpgradeLink.connect(path: socketPath)
        do {
            try link.requireTrustedPeer()
            TakeoverStep.connected.checkpoint()
            try link.send(.hello(.init(pid: getpid(), build: settings.build)))
            let (message, descriptors) = try link.receive(waitingFor: "inventory", timeout: settings.readyTimeout)
            switch message {
            case .inventory(let inventory):
                let inheritance = try Self.inheritance(from: inventory, descriptors: descriptors)
                TakeoverStep.inventory.checkpoint()
                return (Takeover(link: link, settings: settings, logger: logger), inheritance)
            case .refused(let refusal):
                closeAll(descriptors)
                throw TakeoverError(detail: "the running proxy refused: \(refusal.reason)")
            default:
                closeAll(descriptors)
                throw UpgradeProtocolError.unexpected(expected: "inventory", got: message.name)
            }
        } catch {
            link.close()
            throw error
        }
    }

    private static func inheritance(from inventory: UpgradeMessage.Inventory, descriptors: [CInt]) throws -> Inheritance {
        var rest = descriptors[...]
        let listenerFDs = rest.prefix(inventory.listeners.count)
        rest = rest.dropFirst(inventory.listeners.count)
        let listeners = zip(inventory.listeners, listenerFDs).map {
            InheritedListener(namespace: $0.namespace, address: $0.address, descriptor: $1)
        }
        var workloads: [(workload: UpgradeMessage.Inventory.Workload, namespace: NetworkNamespace)] = []
        for workload in inventory.workloads {
            let fd = rest.removeFirst()
            let namespace = try NetworkNamespace(takingOwnershipOf: fd)
            guard namespace.identity == workload.namespace else {
                closeAll(Array(rest))
                throw TakeoverError(detail: "namespace of workload \(workload.identity.id) is \(namespace.identity), expected \(workload.namespace)")
            }
            workloads.append((workload, namespace))
        }
        let admin = inventory.hasAdmin ? rest.removeFirst() : nil
        let agent = inventory.hasAgent ? rest.removeFirst() : nil
        let upgrade = inventory.hasUpgradeListener ? SeqpacketSocket.adopting(rest.removeFirst()) : nil
        return Inheritance(
            build: inventory.build, listeners: listeners, workloads: workloads, admin: admin, agent: agent,
            agentVersion: inventory.agentVersion ?? 1,
            upgradeListener: upgrade, xds: inventory.xds, workloadXDS: inventory.workloadXDS ?? [:])
    }

    /// Tells the old process that every inherited listener is served here.
    public func ready(listeners: Int, workloads: Int) throws {
        TakeoverStep.bound.checkpoint()
        try link.send(.ready(.init(listeners: listeners, workloads: workloads)))
        TakeoverStep.ready.checkpoint()
    }

    /// Adopts connections until the old process is done (or gone), adds its counters, then
    /// starts accepting and relaying: until `done` this process owns nothing the old one could
    /// not take back.
    public func receiveConnections(
        startAccepting: @Sendable () async -> Void,
        adopt: @escaping @Sendable (MigratedConnection, CInt, CInt) async throws -> AdoptedConnection,
        absorbCounters: @Sendable ([StatName: UInt64]) -> Void
    ) async -> Outcome {
        var outcome = Outcome(adopted: 0, failures: [], done: nil, error: nil)
        // Adopted connections stay idle until the old process is done with the hand-over (or
        // gone): until then it may take them back, and only one process may relay a connection.
        var adopted: [AdoptedConnection] = []
        let link = self.link
        let step = settings.stepTimeout
        receiving: while true {
            let received: (message: UpgradeMessage, descriptors: [CInt])
            do {
                received = try await offloaded { try link.receive(waitingFor: "connections or done", timeout: step) }
            } catch {
                outcome.error = "\(error)"
                break
            }
            switch received.message {
            case .connections(let batch):
                var count = 0
                var failures: [String] = []
                for (index, record) in batch.connections.enumerated() {
                    do {
                        adopted.append(try await adopt(record, received.descriptors[2 * index], received.descriptors[2 * index + 1]))
                        count += 1
                        if outcome.adopted == 0, index == batch.connections.count / 2 { TakeoverStep.adopting.checkpoint() }
                    } catch {
                        failures.append("\(record.source) → \(record.destination): \(error)")
                    }
                }
                outcome.adopted += count
                outcome.failures += failures
                try? link.send(.adopted(.init(adopted: count, failures: failures)))
            case .counters(let counters):
                absorbCounters(counters.values)
            case .done(let done):
                outcome.done = done
                break receiving
            case .refused(let refusal):
                // Rolled back: the old process serves everything again, this one nothing.
                outcome.rolledBack = true
                outcome.error = refusal.reason
                link.close()
                return outcome
            default:
                closeAll(received.descriptors)
                outcome.error = "unexpected \(received.message.name) during migration"
                break receiving
            }
        }
        // Done, or the old process is gone (it cannot take anything back): serve everything.
        await startAccepting()
        for connection in adopted { connection.start() }
        link.close()
        return outcome
    }
}

/// A takeover that cannot proceed.
public struct TakeoverError: Error, CustomStringConvertible {
    public var detail: String
    public var description: String { detail }
}
