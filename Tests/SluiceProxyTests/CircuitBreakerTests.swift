import SluiceModel
@testable import SluiceProxy
import Testing

@Suite struct CircuitBreakerTests {
    private func gauge(_ store: StatsStore, _ leaf: String) -> Int64 { store.gauge(.cluster("c", leaf)).value }
    private func counter(_ store: StatsStore, _ leaf: String) -> UInt64 { store.counter(.cluster("c", leaf)).value }

    @Test func connectionsOverflowAtTheLimit() {
        let store = StatsStore()
        let breakers = CircuitBreakers(
            cluster: "c", settings: CircuitBreakerSettings(defaultPriority: CircuitBreakerThresholds(maxConnections: 2)), store: store)
        #expect(gauge(store, "circuit_breakers.default.cx_open") == 0)
        #expect(breakers.tryAcquire(.connections))
        #expect(gauge(store, "circuit_breakers.default.cx_open") == 0)
        #expect(breakers.tryAcquire(.connections))
        #expect(gauge(store, "circuit_breakers.default.cx_open") == 1)
        #expect(!breakers.tryAcquire(.connections))
        #expect(counter(store, "upstream_cx_overflow") == 1)
        breakers.release(.connections)
        #expect(gauge(store, "circuit_breakers.default.cx_open") == 0)
        #expect(breakers.tryAcquire(.connections))
        #expect(breakers.limits(.default).connections.count == 2)
    }

    @Test func requestAndRetryOverflowCounters() {
        let store = StatsStore()
        let breakers = CircuitBreakers(
            cluster: "c",
            settings: CircuitBreakerSettings(defaultPriority: CircuitBreakerThresholds(maxPendingRequests: 1, maxRequests: 1, maxRetries: 0)),
            store: store)
        #expect(gauge(store, "circuit_breakers.default.rq_retry_open") == 1)  // max_retries 0: open from the start
        #expect(!breakers.tryAcquire(.retries))
        #expect(counter(store, "upstream_rq_retry_overflow") == 1)
        #expect(breakers.tryAcquire(.requests))
        #expect(!breakers.tryAcquire(.requests))
        #expect(breakers.tryAcquire(.pendingRequests))
        #expect(!breakers.tryAcquire(.pendingRequests))
        // Envoy counts both request and pending overflows as upstream_rq_pending_overflow.
        #expect(counter(store, "upstream_rq_pending_overflow") == 2)
        #expect(gauge(store, "circuit_breakers.default.rq_open") == 1)
        #expect(gauge(store, "circuit_breakers.default.rq_pending_open") == 1)
    }

    @Test func prioritiesAreSeparateAndRemainingIsOptIn() {
        let store = StatsStore()
        let breakers = CircuitBreakers(
            cluster: "c",
            settings: CircuitBreakerSettings(
                defaultPriority: CircuitBreakerThresholds(maxRequests: 1),
                highPriority: CircuitBreakerThresholds(maxRequests: 3, trackRemaining: true)),
            store: store)
        #expect(breakers.tryAcquire(.requests))
        #expect(!breakers.tryAcquire(.requests))
        #expect(breakers.tryAcquire(.requests, priority: .high))
        #expect(gauge(store, "circuit_breakers.high.remaining_rq") == 2)
        #expect(!store.snapshot().contains { $0.name.leaf == "circuit_breakers.default.remaining_rq" })
        breakers.release(.requests, priority: .high)
        #expect(gauge(store, "circuit_breakers.high.remaining_rq") == 3)
        // A stray release never drives the count negative.
        breakers.release(.requests, priority: .high)
        #expect(breakers.limits(.high).requests.count == 0)
    }

    @Test func clusterOwnsBreakersFromConfig() {
        let store = StatsStore()
        var config = ClusterConfig(name: "c", discovery: .staticEndpoints)
        config.circuitBreakers.defaultPriority.maxConnections = 1
        let cluster = UpstreamCluster(config: config, store: store)
        #expect(cluster.circuitBreakers.tryAcquire(.connections))
        #expect(!cluster.circuitBreakers.tryAcquire(.connections))
        #expect(counter(store, "upstream_cx_overflow") == 1)
    }
}
