import NIOConcurrencyHelpers

/// Envoy's per-cluster request stats (`cluster.<name>.upstream_rq_*`) and HTTP connection counts.
final class HTTPClusterStats: Sendable {
    let requestsTotal: Counter
    let requestsActive: Gauge
    let requestsCompleted: Counter
    let pendingTotal: Counter
    let pendingActive: Gauge
    let retries: Counter
    let retrySuccess: Counter
    let timeouts: Counter
    let perTryTimeouts: Counter
    let receivedResets: Counter
    let sentResets: Counter
    let http1ConnectionsTotal: Counter
    let idleTimeouts: Counter
    let http2ConnectionsTotal: Counter
    private let byClass: [Counter]
    private let byCode: NIOLockedValueBox<[Int: Counter]>
    private let cluster: String
    private let store: StatsStore

    init(cluster: String, store: StatsStore) {
        func counter(_ leaf: String) -> Counter { store.counter(.cluster(cluster, leaf)) }
        self.cluster = cluster
        self.store = store
        requestsTotal = counter("upstream_rq_total")
        requestsActive = store.gauge(.cluster(cluster, "upstream_rq_active"))
        requestsCompleted = counter("upstream_rq_completed")
        pendingTotal = counter("upstream_rq_pending_total")
        pendingActive = store.gauge(.cluster(cluster, "upstream_rq_pending_active"))
        retries = counter("upstream_rq_retry")
        retrySuccess = counter("upstream_rq_retry_success")
        timeouts = counter("upstream_rq_timeout")
        perTryTimeouts = counter("upstream_rq_per_try_timeout")
        receivedResets = counter("upstream_rq_rx_reset")
        sentResets = counter("upstream_rq_tx_reset")
        http1ConnectionsTotal = counter("upstream_cx_http1_total")
        idleTimeouts = counter("upstream_cx_idle_timeout")
        http2ConnectionsTotal = counter("upstream_cx_http2_total")
        byClass = (1...5).map { counter("upstream_rq_\($0)xx") }
        byCode = NIOLockedValueBox([:])
    }

    /// Counts an upstream response: `upstream_rq_<class>xx`, `upstream_rq_<code>`, completed.
    func countResponse(status: Int) {
        let index = status / 100 - 1
        if byClass.indices.contains(index) { byClass[index].increment() }
        let code = byCode.withLockedValue { codes in
            if let existing = codes[status] { return existing }
            let created = store.counter(.cluster(cluster, "upstream_rq_\(status)"))
            codes[status] = created
            return created
        }
        code.increment()
        requestsCompleted.increment()
    }
}
