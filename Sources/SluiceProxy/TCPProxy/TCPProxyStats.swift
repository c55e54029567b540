/// Envoy's `tcp.<stat_prefix>.*` stats.
struct TCPProxyStats: Sendable {
    let downstreamConnectionsTotal: Counter
    let downstreamNoRoute: Counter
    let downstreamBytesReceived: Counter
    let downstreamBytesSent: Counter
    let downstreamFlowControlPaused: Counter
    let downstreamFlowControlResumed: Counter
    let idleTimeout: Counter
    let maxDownstreamConnectionDurationReached: Counter
    let upstreamFlushTotal: Counter
    let upstreamFlushActive: Gauge

    init(prefix: String, store: StatsStore) {
        func counter(_ leaf: String) -> Counter { store.counter(.tcp(prefix, leaf)) }
        downstreamConnectionsTotal = counter("downstream_cx_total")
        downstreamNoRoute = counter("downstream_cx_no_route")
        downstreamBytesReceived = counter("downstream_cx_rx_bytes_total")
        downstreamBytesSent = counter("downstream_cx_tx_bytes_total")
        downstreamFlowControlPaused = counter("downstream_flow_control_paused_reading_total")
        downstreamFlowControlResumed = counter("downstream_flow_control_resumed_reading_total")
        idleTimeout = counter("idle_timeout")
        maxDownstreamConnectionDurationReached = counter("max_downstream_connection_duration")
        upstreamFlushTotal = counter("upstream_flush_total")
        upstreamFlushActive = store.gauge(.tcp(prefix, "upstream_flush_active"))
    }
}

/// `sluice.workload.<id>.*`: what went through the proxy for one enrolled workload.
public struct WorkloadStats: Sendable {
    public let connectionsTotal: Counter
    public let connectionsActive: Gauge
    public let outboundConnections: Counter
    public let inboundConnections: Counter
    public let bytesReceived: Counter
    public let bytesSent: Counter

    public init(workload: String, store: StatsStore) {
        connectionsTotal = store.counter(.workload(workload, "downstream_cx_total"))
        connectionsActive = store.gauge(.workload(workload, "downstream_cx_active"))
        outboundConnections = store.counter(.workload(workload, "outbound_cx_total"))
        inboundConnections = store.counter(.workload(workload, "inbound_cx_total"))
        bytesReceived = store.counter(.workload(workload, "downstream_rx_bytes_total"))
        bytesSent = store.counter(.workload(workload, "downstream_tx_bytes_total"))
    }
}
