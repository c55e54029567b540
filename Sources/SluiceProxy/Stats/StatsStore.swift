import NIOConcurrencyHelpers
import Synchronization

/// A stat's name in Envoy's dotted form, split so tag extraction (for Prometheus) needs no parsing:
/// `<scope>.<tagValue>.<leaf>` such as `cluster.backend.upstream_cx_total`.
public struct StatName: Hashable, Sendable, Comparable, Codable, CustomStringConvertible {
    /// Scope such as `cluster`, `listener`, `tcp`, `server` or `sluice.workload`.
    public var scope: String
    /// Tag carried in the name (`envoy_cluster_name`, …), nil for unscoped stats like `server.live`.
    public var tag: Tag?
    public var leaf: String

    /// A tag that Envoy's default tag extractors pull out of the dotted name.
    public struct Tag: Hashable, Sendable, Codable {
        public var name: String
        public var value: String
    }

    public init(scope: String, tag: Tag? = nil, leaf: String) {
        self.scope = scope
        self.tag = tag
        self.leaf = leaf
    }

    public static func cluster(_ cluster: String, _ leaf: String) -> StatName {
        StatName(scope: "cluster", tag: Tag(name: "envoy_cluster_name", value: cluster), leaf: leaf)
    }

    public static func listener(_ statName: String, _ leaf: String) -> StatName {
        StatName(scope: "listener", tag: Tag(name: "envoy_listener_address", value: statName), leaf: leaf)
    }

    public static func tcp(_ prefix: String, _ leaf: String) -> StatName {
        StatName(scope: "tcp", tag: Tag(name: "envoy_tcp_prefix", value: prefix), leaf: leaf)
    }

    /// A stat of an HTTP connection manager or one of its filters: `http.<stat_prefix>.<leaf>`.
    public static func http(_ statPrefix: String, _ leaf: String) -> StatName {
        StatName(scope: "http", tag: Tag(name: "envoy_http_conn_manager_prefix", value: statPrefix), leaf: leaf)
    }

    public static func workload(_ id: String, _ leaf: String) -> StatName {
        StatName(scope: "sluice.workload", tag: Tag(name: "sluice_workload", value: id), leaf: leaf)
    }

    public var description: String {
        if let tag { return "\(scope).\(tag.value).\(leaf)" }
        return "\(scope).\(leaf)"
    }

    public static func < (lhs: StatName, rhs: StatName) -> Bool {
        lhs.description < rhs.description
    }
}

/// A monotonically increasing stat.
public final class Counter: Sendable {
    private let storage = Atomic<UInt64>(0)

    public init() {}

    public func increment() { add(1) }

    public func add(_ amount: UInt64) {
        storage.wrappingAdd(amount, ordering: .relaxed)
    }

    public var value: UInt64 { storage.load(ordering: .relaxed) }
}

/// A stat that goes up and down (active connections, healthy hosts).
public final class Gauge: Sendable {
    private let storage = Atomic<Int64>(0)

    public init() {}

    public func increment() { storage.wrappingAdd(1, ordering: .relaxed) }
    public func decrement() { storage.wrappingSubtract(1, ordering: .relaxed) }
    public func set(_ value: Int64) { storage.store(value, ordering: .relaxed) }
    public var value: Int64 { storage.load(ordering: .relaxed) }
}

/// All stats of one proxy process. Lookups take a lock; the data path keeps the returned objects.
public final class StatsStore: Sendable {
    private struct Entries {
        var counters: [StatName: Counter] = [:]
        var gauges: [StatName: Gauge] = [:]
    }

    private let entries = NIOLockedValueBox(Entries())

    public init() {}

    public func counter(_ name: StatName) -> Counter {
        entries.withLockedValue { entries in
            if let existing = entries.counters[name] { return existing }
            let counter = Counter()
            entries.counters[name] = counter
            return counter
        }
    }

    public func gauge(_ name: StatName) -> Gauge {
        entries.withLockedValue { entries in
            if let existing = entries.gauges[name] { return existing }
            let gauge = Gauge()
            entries.gauges[name] = gauge
            return gauge
        }
    }

    /// A stat's current value.
    public enum Value: Sendable, Equatable {
        case counter(UInt64)
        case gauge(Int64)
    }

    /// Every stat with its value, sorted by name.
    public func snapshot() -> [(name: StatName, value: Value)] {
        let (counters, gauges) = entries.withLockedValue { ($0.counters, $0.gauges) }
        var result: [(name: StatName, value: Value)] = []
        result.reserveCapacity(counters.count + gauges.count)
        for (name, counter) in counters { result.append((name, .counter(counter.value))) }
        for (name, gauge) in gauges { result.append((name, .gauge(gauge.value))) }
        return result.sorted { $0.name < $1.name }
    }

    /// Every counter's value: what a new process continues from after a hot upgrade.
    public func counterValues() -> [StatName: UInt64] {
        entries.withLockedValue { $0.counters }.mapValues(\.value)
    }

    /// Adds the previous process's counter values, so counters do not restart from zero.
    public func absorb(_ values: [StatName: UInt64]) {
        for (name, value) in values where value > 0 { counter(name).add(value) }
    }

    /// Drops the gauges and counters of a scope instance that no longer exists (a removed workload).
    public func removeAll(scope: String, tagValue: String) {
        entries.withLockedValue { entries in
            entries.counters = entries.counters.filter { !($0.key.scope == scope && $0.key.tag?.value == tagValue) }
            entries.gauges = entries.gauges.filter { !($0.key.scope == scope && $0.key.tag?.value == tagValue) }
        }
    }
}
