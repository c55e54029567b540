import Foundation
@testable import SluiceAdmin
import SluiceModel
import SluiceProxy
import Testing

@Suite struct ClustersListenersFormatterTests {
    @Test func clusterTextLinesForAHost() {
        let host = UpstreamHost(
            address: SocketEndpoint("10.0.0.2:8080")!, hostname: "api.internal", weight: 3, health: .unhealthy,
            locality: Locality(region: "eu", zone: "eu-1a", subZone: "rack7"), priority: 1)
        host.connectionsTotal.add(4)
        host.connectionsActive.increment()
        host.connectFailures.increment()
        let text = ClustersFormatter.text([.init(name: "backend", hosts: [host])])
        #expect(text == """
            backend::observability_name::backend
            backend::added_via_api::false
            backend::10.0.0.2:8080::cx_active::1
            backend::10.0.0.2:8080::cx_connect_fail::1
            backend::10.0.0.2:8080::cx_total::4
            backend::10.0.0.2:8080::rq_active::0
            backend::10.0.0.2:8080::rq_error::0
            backend::10.0.0.2:8080::rq_success::0
            backend::10.0.0.2:8080::rq_timeout::0
            backend::10.0.0.2:8080::rq_total::0
            backend::10.0.0.2:8080::hostname::api.internal
            backend::10.0.0.2:8080::health_flags::/failed_eds_health
            backend::10.0.0.2:8080::weight::3
            backend::10.0.0.2:8080::region::eu
            backend::10.0.0.2:8080::zone::eu-1a
            backend::10.0.0.2:8080::sub_zone::rack7
            backend::10.0.0.2:8080::canary::false
            backend::10.0.0.2:8080::priority::1
            backend::10.0.0.2:8080::success_rate::-1
            backend::10.0.0.2:8080::local_origin_success_rate::-1

            """)
    }

    @Test func healthFlagsFollowEnvoy() {
        #expect(ClustersFormatter.healthFlags(.unknown) == "healthy")
        #expect(ClustersFormatter.healthFlags(.healthy) == "healthy")
        #expect(ClustersFormatter.healthFlags(.timeout) == "/failed_eds_health")
        #expect(ClustersFormatter.healthFlags(.degraded) == "/degraded_eds_health")
        #expect(ClustersFormatter.healthFlags(.draining) == "/eds_status_draining")
    }

    @Test func clustersJSONUsesEnvoyFieldNames() throws {
        let host = UpstreamHost(address: SocketEndpoint("[::1]:80")!, weight: 2, health: .degraded)
        let json = try AdminProto.json(ClustersFormatter.message([.init(name: "v6", hosts: [host])]))
        #expect(json.contains(#""cluster_statuses":[{"name":"v6""#))
        #expect(json.contains(#""socket_address":{"address":"::1","port_value":80}"#))
        #expect(json.contains(#""eds_health_status":"DEGRADED""#))
        #expect(json.contains(#""weight":2"#))
        // Zero values are omitted, as in Envoy's own JSON (no always-print of primitive fields).
        #expect(json.contains(#"{"type":"GAUGE","name":"cx_active"}"#))
    }

    @Test func listenersTextAndJSON() throws {
        let host: [ListenersFormatter.HostListener] = [
            ("outbound", [SocketEndpoint("0.0.0.0:15001")!, SocketEndpoint("[::]:15001")!]),
        ]
        let workloadJSON = """
            {"identity": {"id": "ns-a", "name": "ns-a", "namespace": "default", "serviceAccount": "default"},
             "namespace": {"device": 4, "inode": 4026532000},
             "listeners": [{"name": "inbound", "capture": "inbound", "addresses": ["0.0.0.0:15006"]}],
             "connectionsActive": 0, "connectionsTotal": 0, "bytesReceived": 0, "bytesSent": 0}
            """
        let workload = try JSONDecoder().decode(WorkloadStatus.self, from: Data(workloadJSON.utf8))
        #expect(ListenersFormatter.text(host: host, workloads: [workload]) == """
            outbound::0.0.0.0:15001
            outbound::[::]:15001
            inbound::0.0.0.0:15006::workload=ns-a

            """)
        let json = try AdminProto.json(ListenersFormatter.message(host: host))
        #expect(json == #"{"listener_statuses":[{"name":"outbound","local_address":{"socket_address":{"address":"0.0.0.0","port_value":15001}},"additional_local_addresses":[{"socket_address":{"address":"::","port_value":15001}}]}]}"#)
    }
}
