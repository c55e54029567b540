import Foundation
import Testing

/// One shared proxy, one ADS stream per enrolled workload: each workload gets the configuration
/// the control plane computes for its own node id, as its sidecar would.
@Suite(.serialized) struct PerWorkloadXDSTests {
    init() throws {
        try #require(geteuid() == 0, "end-to-end tests need root: they create network namespaces and capture rules")
    }

    static func nodeID(_ host: Topology.Host) -> String {
        "sidecar~\(host.ipv4)~\(host.namespace).default~default.svc.cluster.local"
    }

    @Test func eachWorkloadGetsItsOwnConfiguration() throws {
        try withTopology("per-workload-xds") { topology in
            let a = try topology.addHost("a")
            let b = try topology.addHost("b")
            let server = try topology.addHost("srv")
            let sluice = try SluiceUnderTest(topology: topology, config: XDSHarness.nodeBootstrap)
            _ = try XDSHarness.startNodeControlPlane(topology, in: sluice.node)
            func push(_ host: Topology.Host, _ type: String, _ version: String, _ resources: [String]) throws {
                try XDSHarness.push(topology, in: sluice.node, type, version, resources, node: Self.nodeID(host))
            }
            func upstream(_ port: Int) -> String {
                """
                {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "upstream", "type": "STATIC", "connect_timeout": "1s",
                 "load_assignment": {"cluster_name": "upstream", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "\(server.ipv4)", "port_value": \(port)}}}}]}]}}
                """
            }
            let capture = XDSHarness.listener("virtualOutbound", port: 15001, cluster: "upstream")
                .replacingOccurrences(of: "\"127.0.0.1\"", with: "\"0.0.0.0\"")
            for (host, port) in [(a, 9101), (b, 9102)] {
                try push(host, "cds", "v1", [upstream(port)])
                try push(host, "lds", "v1", [capture])
            }
            try sluice.startServer(on: server, port: 9101)
            try sluice.startServer(on: server, port: 9102)
            try sluice.startAgent()
            try sluice.startProxy(extra: ["--xds-per-workload"])
            try sluice.enroll(a)
            try sluice.enroll(b)

            // Both connect to the same destination; each workload's own listener decides.
            #expect(try sluice.client(from: a, to: "\(server.ipv4):8080", "WHO").contains("local=\(server.ipv4):9101"))
            #expect(try sluice.client(from: b, to: "\(server.ipv4):8080", "WHO").contains("local=\(server.ipv4):9102"))

            let requests = try topology.exec(sluice.node, ["curl", "-sS", "http://127.0.0.1:18001/requests"])
            #expect(requests.contains(Self.nodeID(a)) && requests.contains(Self.nodeID(b)), "one stream per workload node id")

            // An update for one workload's node changes that workload only.
            try push(a, "cds", "v2", [upstream(9102)])
            try eventually("workload a follows its own update") {
                try sluice.client(from: a, to: "\(server.ipv4):8080", "WHO").contains("local=\(server.ipv4):9102")
            }
            #expect(try sluice.client(from: b, to: "\(server.ipv4):8080", "WHO").contains("local=\(server.ipv4):9102"))

            try sluice.unenroll(a)
            #expect(try sluice.client(from: a, to: "\(server.ipv4):9101", "WHO").contains("local=\(server.ipv4):9101"),
                    "released: direct again")
        }
    }
}
