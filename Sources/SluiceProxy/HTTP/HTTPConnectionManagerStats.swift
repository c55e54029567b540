/// Envoy's `http.<stat_prefix>.*` connection manager stats.
final class HTTPConnectionManagerStats: Sendable {
    let downstreamConnectionsTotal: Counter
    let downstreamConnectionsActive: Gauge
    let downstreamConnectionsHTTP1Total: Counter
    let downstreamConnectionsHTTP2Total: Counter
    let downstreamConnectionsHTTP1Active: Gauge
    let downstreamConnectionsHTTP2Active: Gauge
    let downstreamRequestsTotal: Counter
    let downstreamRequestsHTTP1Total: Counter
    let downstreamRequestsHTTP2Total: Counter
    let downstreamRequestsActive: Gauge
    /// `downstream_rq_1xx` … `downstream_rq_5xx`, indexed by the status class.
    let downstreamRequestsByClass: [Counter]
    let downstreamRequestsCompleted: Counter
    let downstreamRequestTimeouts: Counter
    let downstreamRequestIdleTimeouts: Counter
    let downstreamRequestTooLarge: Counter
    let downstreamRequestHeadersTooLarge: Counter
    let downstreamConnectionsMaxDurationReached: Counter
    let upgradeOnNonUpgradeRoute: Counter
    let downstreamConnectionsDrainClose: Counter
    let downstreamConnectionsIdleTimeout: Counter
    let downstreamProtocolErrors: Counter
    let noRoute: Counter
    let noCluster: Counter
    let directResponses: Counter
    let redirects: Counter
    let downstreamBytesReceived: Counter
    let downstreamBytesSent: Counter

    init(prefix: String, store: StatsStore) {
        func counter(_ leaf: String) -> Counter { store.counter(.http(prefix, leaf)) }
        func gauge(_ leaf: String) -> Gauge { store.gauge(.http(prefix, leaf)) }
        downstreamConnectionsTotal = counter("downstream_cx_total")
        downstreamConnectionsActive = gauge("downstream_cx_active")
        downstreamConnectionsHTTP1Total = counter("downstream_cx_http1_total")
        downstreamConnectionsHTTP2Total = counter("downstream_cx_http2_total")
        downstreamConnectionsHTTP1Active = gauge("downstream_cx_http1_active")
        downstreamConnectionsHTTP2Active = gauge("downstream_cx_http2_active")
        downstreamRequestsTotal = counter("downstream_rq_total")
        downstreamRequestsHTTP1Total = counter("downstream_rq_http1_total")
        downstreamRequestsHTTP2Total = counter("downstream_rq_http2_total")
        downstreamRequestsActive = gauge("downstream_rq_active")
        downstreamRequestsByClass = (1...5).map { counter("downstream_rq_\($0)xx") }
        downstreamRequestsCompleted = counter("downstream_rq_completed")
        downstreamRequestTimeouts = counter("downstream_rq_timeout")
        downstreamRequestIdleTimeouts = counter("downstream_rq_idle_timeout")
        downstreamRequestTooLarge = counter("downstream_rq_too_large")
        downstreamRequestHeadersTooLarge = counter("downstream_rq_header_too_large")
        downstreamConnectionsMaxDurationReached = counter("downstream_cx_max_duration_reached")
        upgradeOnNonUpgradeRoute = counter("downstream_rq_ws_on_non_ws_route")
        downstreamConnectionsDrainClose = counter("downstream_cx_drain_close")
        downstreamConnectionsIdleTimeout = counter("downstream_cx_idle_timeout")
        downstreamProtocolErrors = counter("downstream_cx_protocol_error")
        noRoute = counter("no_route")
        noCluster = counter("no_cluster")
        directResponses = counter("rq_direct_response")
        redirects = counter("rq_redirect")
        downstreamBytesReceived = counter("downstream_cx_rx_bytes_total")
        downstreamBytesSent = counter("downstream_cx_tx_bytes_total")
    }

    /// Counts a finished response by its status class.
    func countResponse(status: Int) {
        let index = status / 100 - 1
        if downstreamRequestsByClass.indices.contains(index) { downstreamRequestsByClass[index].increment() }
        downstreamRequestsCompleted.increment()
    }
}
