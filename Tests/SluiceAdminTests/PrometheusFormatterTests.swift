@testable import SluiceAdmin
import SluiceProxy
import Testing

@Suite struct PrometheusFormatterTests {
    @Test(arguments: [
        (StatName.cluster("backend", "upstream_cx_total"), "envoy_cluster_upstream_cx_total", ["envoy_cluster_name": "backend"]),
        (StatName.listener("0.0.0.0_15001", "downstream_cx_total"), "envoy_listener_downstream_cx_total",
         ["envoy_listener_address": "0.0.0.0_15001"]),
        (StatName.tcp("outbound", "downstream_cx_total"), "envoy_tcp_downstream_cx_total", ["envoy_tcp_prefix": "outbound"]),
        (StatName(scope: "server", leaf: "live"), "envoy_server_live", [:]),
        (StatName.workload("ns-a", "connections_total"), "sluice_workload_connections_total", ["sluice_workload": "ns-a"]),
        (StatName(scope: "sluice", leaf: "workloads_active"), "sluice_workloads_active", [:]),
        (StatName(scope: "odd-scope", leaf: "a.b"), "envoy_odd_scope_a_b", [:]),
    ])
    func namesAndLabels(stat: StatName, name: String, labels: [String: String]) {
        let series = PrometheusFormatter.series(for: stat)
        #expect(series.name == name)
        #expect(series.labels == labels)
    }

    @Test func rendersTypesAndLabels() {
        let text = PrometheusFormatter.render([
            (.cluster("backend", "upstream_cx_total"), .counter(7)),
            (.cluster("other", "upstream_cx_total"), .counter(1)),
            (StatName(scope: "server", leaf: "live"), .gauge(1)),
            (.workload("ns-a", "connections_active"), .gauge(2)),
        ])
        #expect(text.contains("# TYPE envoy_cluster_upstream_cx_total counter\n"))
        #expect(text.contains("envoy_cluster_upstream_cx_total{envoy_cluster_name=\"backend\"} 7\n"))
        #expect(text.contains("envoy_cluster_upstream_cx_total{envoy_cluster_name=\"other\"} 1\n"))
        #expect(text.contains("# TYPE envoy_server_live gauge\nenvoy_server_live 1.0\n"))
        #expect(text.contains("sluice_workload_connections_active{sluice_workload=\"ns-a\"} 2.0\n"))
    }

    @Test func clashingKindsDoNotTrap() {
        // One Prometheus name as a labeled counter, a gauge and an unlabeled counter: the first
        // in name order (`tcp.v.y_z`) wins instead of the registry trapping.
        let text = PrometheusFormatter.render([
            (StatName(scope: "tcp", leaf: "y_z"), .counter(1)),
            (StatName(scope: "tcp.y", leaf: "z"), .gauge(2)),
            (.tcp("v", "y_z"), .counter(3)),
        ])
        #expect(text.contains("envoy_tcp_y_z{envoy_tcp_prefix=\"v\"} 3\n"))
        #expect(!text.contains(" 1\n"))
        #expect(!text.contains(" 2\n"))
    }
}
