import Foundation
import Testing

/// The xDS state moves with a hot upgrade: the new process serves the configuration the old one
/// had accepted, at the same versions, without waiting for the management server.
@Suite(.serialized) struct HotUpgradeXDSTests {
    init() throws {
        try #require(geteuid() == 0, "end-to-end tests need root: they create network namespaces and capture rules")
    }

    @Test func theNewProcessServesTheHandedOverConfigurationWithoutTheControlPlane() throws {
        try withTopology("upgrade-xds") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            let bootstrap = """
                admin:
                  address: { socket_address: { address: 127.0.0.1, port_value: 15000 } }
                dynamic_resources:
                  ads_config:
                    api_type: GRPC
                    transport_api_version: V3
                    grpc_services:
                    - envoy_grpc: { cluster_name: xds }
                  lds_config: { ads: {}, resource_api_version: V3 }
                  cds_config: { ads: {}, resource_api_version: V3 }
                static_resources:
                  clusters:
                  - name: xds
                    type: STATIC
                    connect_timeout: 1s
                    load_assignment:
                      cluster_name: xds
                      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 18000 } } } }] }]
                """
            let sluice = try SluiceUnderTest(topology: topology, config: bootstrap)
            let xdsServer = try topology.spawn("xds-server", in: sluice.node, [
                XDSHarness.python, XDSHarness.server, "--grpc", "127.0.0.1:18000", "--control", "127.0.0.1:18001",
            ])
            try eventually("xds server ready", timeout: 30) { xdsServer.log.contains("ready") }
            func push(_ type: String, _ version: String, _ resources: [String]) throws {
                let body = "{\"type\": \"\(type)\", \"version\": \"\(version)\", \"resources\": [\(resources.joined(separator: ","))]}"
                let reply = try topology.exec(sluice.node, [
                    "curl", "-sS", "-X", "POST", "http://127.0.0.1:18001/resources", "-H", "Content-Type: application/json", "--data-binary", body,
                ])
                #expect(!reply.contains("error"), "\(reply)")
            }
            // Every outbound connection goes to the server's port 9101, whatever its destination.
            try push("cds", "cds-7", ["""
                {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "upstream", "type": "STATIC", "connect_timeout": "1s",
                 "load_assignment": {"cluster_name": "upstream", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "\(server.ipv4)", "port_value": 9101}}}}]}]}}
                """])
            try push("lds", "lds-3", [
                XDSHarness.listener("virtualOutbound", port: 15001, cluster: "upstream").replacingOccurrences(of: "\"127.0.0.1\"", with: "\"0.0.0.0\""),
            ])
            try sluice.startServer(on: server, port: 9101)
            try sluice.startAgent()
            try sluice.startProxy()
            try sluice.enroll(app)
            #expect(try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO").contains("local=\(server.ipv4):9101"))

            // The management server goes away; only the handed-over state can configure the new process.
            xdsServer.stop()
            let setup = UpgradeSetup(topology: topology, sluice: sluice, app: app, server: server)
            let outcome = try setup.upgrade(to: SluiceUnderTest.binary)
            #expect(outcome.succeeded, "\(outcome.output)")
            try sluice.waitReady()
            let answer = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")
            #expect(answer.contains("local=\(server.ipv4):9101"), "the new process routes with the xDS configuration it inherited: \(answer)")
            let dump = try sluice.admin("/config_dump")
            #expect(dump.contains("\"version_info\": \"cds-7\"") || dump.contains("\"version_info\":\"cds-7\""), "CDS version carried over")
            #expect(dump.contains("lds-3"), "LDS version carried over")
            #expect(try topology.exec(sluice.node, ["cat", "/proc/\(outcome.pid)/cmdline"]).contains("--takeover"))
        }
    }
}
