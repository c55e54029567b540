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
            let sluice = try SluiceUnderTest(topology: topology, config: XDSHarness.nodeBootstrap)
            let xdsServer = try XDSHarness.startNodeControlPlane(topology, in: sluice.node)
            func push(_ type: String, _ version: String, _ resources: [String]) throws {
                try XDSHarness.push(topology, in: sluice.node, type, version, resources)
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

    @Test func eachWorkloadsOwnConfigurationMovesToo() throws {
        try withTopology("upgrade-xds-per-workload") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            let sluice = try SluiceUnderTest(topology: topology, config: XDSHarness.nodeBootstrap)
            let xdsServer = try XDSHarness.startNodeControlPlane(topology, in: sluice.node)
            let node = PerWorkloadXDSTests.nodeID(app)
            try XDSHarness.push(topology, in: sluice.node, "cds", "w-cds-1", ["""
                {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "upstream", "type": "STATIC", "connect_timeout": "1s",
                 "load_assignment": {"cluster_name": "upstream", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "\(server.ipv4)", "port_value": 9102}}}}]}]}}
                """], node: node)
            try XDSHarness.push(topology, in: sluice.node, "lds", "w-lds-1", [
                XDSHarness.listener("virtualOutbound", port: 15001, cluster: "upstream").replacingOccurrences(of: "\"127.0.0.1\"", with: "\"0.0.0.0\""),
            ], node: node)
            try sluice.startServer(on: server, port: 9102)
            try sluice.startAgent()
            try sluice.startProxy(extra: ["--xds-per-workload"])
            try sluice.enroll(app)
            #expect(try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO").contains("local=\(server.ipv4):9102"))

            xdsServer.stop()
            let setup = UpgradeSetup(topology: topology, sluice: sluice, app: app, server: server)
            let outcome = try setup.upgrade(to: SluiceUnderTest.binary)
            #expect(outcome.succeeded, "\(outcome.output)")
            // Without the handed-over state the workload would wait for a first configuration
            // that cannot come, then serve only the static one.
            #expect(sluice.proxy?.log.contains("no initial xDS configuration yet") == false)
            let answer = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")
            #expect(answer.contains("local=\(server.ipv4):9102"), "the workload's own listener and cluster moved: \(answer)")
        }
    }
}
