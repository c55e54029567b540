import Foundation
import Testing

/// Whether this kernel can run the IPVS capture tests. Hosts without IPVS skip them with this
/// reason; `Scripts/test` runs them again inside a VM with Debian's kernel (`Scripts/vmtest`),
/// which sets SLUICE_REQUIRE_IPVS=1 so that a missing IPVS fails there instead of skipping.
enum IPVSKernel {
    static let available: Bool = {
        if FileManager.default.fileExists(atPath: "/proc/net/ip_vs") { return true }
        return (try? Shell.run(["modprobe", "ip_vs"]).status) == 0
    }()

    static let required = ProcessInfo.processInfo.environment["SLUICE_REQUIRE_IPVS"] == "1"

    static let skipReason: Comment =
        "this kernel has no IPVS (modprobe ip_vs failed); Scripts/test runs these tests inside a VM with Debian's kernel: Scripts/vmtest -- .build/debug/SluicePackageTests.xctest --testing-library swift-testing --filter IPVSCaptureTests"
}

/// IPVS capture with real virtual services in real namespaces: outbound to listed service
/// addresses goes through the proxy, which learns the service address from conntrack.
@Suite(.serialized, .enabled(if: IPVSKernel.available || IPVSKernel.required, IPVSKernel.skipReason))
struct IPVSCaptureTests {
    static let vipV4 = "10.96.0.1"
    static let vipV6 = "fd96::1"

    init() throws {
        try #require(geteuid() == 0, "end-to-end tests need root: they create network namespaces and IPVS services")
        try #require(FileManager.default.isExecutableFile(atPath: SluiceUnderTest.binary), "build sluice first: \(SluiceUnderTest.binary)")
        try #require(IPVSKernel.available, "SLUICE_REQUIRE_IPVS=1 but this kernel has no IPVS (modprobe ip_vs failed)")
    }

    /// The default capture bootstrap plus one listener per service address (bind_to_port false,
    /// reached by the outbound listener's original-destination hand-off) relaying to `server`.
    static func bootstrap(server: Topology.Host, port: Int) -> String {
        let base = SluiceUnderTest.bootstrap()
        func vip(_ name: String, _ address: String, cluster: String) -> String {
            """
              - name: \(name)
                address: { socket_address: { address: "\(address)", port_value: 80 } }
                bind_to_port: false
                filter_chains:
                - filters:
                  - name: envoy.filters.network.tcp_proxy
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
                      stat_prefix: \(name)
                      cluster: \(cluster)

            """
        }
        func cluster(_ name: String, _ address: String) -> String {
            """

              - name: \(name)
                type: STATIC
                connect_timeout: 2s
                load_assignment:
                  cluster_name: \(name)
                  endpoints:
                  - lb_endpoints:
                    - endpoint: { address: { socket_address: { address: "\(address)", port_value: \(port) } } }
            """
        }
        let listeners = vip("vip_v4", vipV4, cluster: "backend_v4") + vip("vip_v6", vipV6, cluster: "backend_v6")
        return base.replacingOccurrences(of: "  clusters:\n", with: listeners + "  clusters:\n")
            + cluster("backend_v4", server.ipv4) + cluster("backend_v6", server.ipv6) + "\n"
    }

    /// Routes to the service ranges, so connect() gets as far as IPVS at LOCAL_OUT.
    static func addServiceRoutes(_ topology: Topology, _ host: Topology.Host) throws {
        try topology.exec(host.namespace, ["ip", "route", "add", "10.96.0.0/16", "dev", "eth0"])
        try topology.exec(host.namespace, ["ip", "route", "add", "10.97.0.0/16", "dev", "eth0"])
        try topology.exec(host.namespace, ["ip", "-6", "route", "add", "fd96::/64", "dev", "eth0"])
    }

    /// The TCP virtual services of a namespace, from /proc/net/ip_vs (hex addresses).
    static func virtualServices(_ topology: Topology, _ host: Topology.Host) throws -> [String] {
        try topology.exec(host.namespace, ["cat", "/proc/net/ip_vs"]).split(separator: "\n")
            .filter { $0.hasPrefix("TCP") }.map { String($0) }
    }

    /// What else the mode adds besides virtual services: Sluice's local routes (protocol 233)
    /// and the nftables table that makes conntrack track the namespace.
    static func routesAndTables(_ topology: Topology, _ host: Topology.Host) throws -> [String] {
        let routes = try topology.exec(host.namespace, ["ip", "route", "show", "table", "local"])
            + topology.exec(host.namespace, ["ip", "-6", "route", "show", "table", "local"])
        let tables = try topology.exec(host.namespace, ["nft", "list", "tables"])
        return (routes + tables).split(separator: "\n").map(String.init)
            .filter { $0.contains("proto 233") || $0.contains("sluice_ipvs") }
    }

    static func conntrackSysctl(_ topology: Topology, _ host: Topology.Host) throws -> String {
        try topology.exec(host.namespace, ["cat", "/proc/sys/net/ipv4/vs/conntrack"]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static let services = ["--mode", "ipvs", "--services", "\(vipV4):80,[\(vipV6)]:80"]

    @Test func outboundToServiceAddressesGoesThroughTheProxyWithTheOriginalDestination() throws {
        try withTopology("ipvs-out") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            try Self.addServiceRoutes(topology, app)
            let sluice = try SluiceUnderTest(topology: topology, config: Self.bootstrap(server: server, port: 8080))
            try sluice.startUp()
            try sluice.startServer(on: server, port: 8080)
            try sluice.enroll(app, Self.services)
            #expect(try Self.virtualServices(topology, app).count == 2)
            #expect(try Self.conntrackSysctl(topology, app) == "1")

            // The proxy only knows where 10.96.0.1:80 goes from SO_ORIGINAL_DST (conntrack), since
            // the service address exists nowhere: the answer proves the original destination.
            let reply = try sluice.client(from: app, to: "\(Self.vipV4):80", "WHO")
            #expect(reply.hasPrefix("peer=\(app.ipv4):"), "the server must see the workload's own address: \(reply)")
            #expect(reply.contains("local=\(server.ipv4):8080"), "\(reply)")
            let replyV6 = try sluice.client(from: app, to: "[\(Self.vipV6)]:80", "WHO")
            #expect(replyV6.hasPrefix("peer=[\(app.ipv6)]:"), "IPv6 too: \(replyV6)")
            let stats = try sluice.stats()
            #expect(stats["sluice.workload.\(app.namespace).outbound_cx_total"] == 2)
            #expect(stats["cluster.backend_v4.upstream_cx_total"] == 1)
            #expect(stats["cluster.backend_v6.upstream_cx_total"] == 1)

            // A destination that is not a listed service is not captured: no catch-all in IPVS.
            let direct = try sluice.client(from: app, to: "\(server.ipv4):8080", "WHO")
            #expect(direct.hasPrefix("peer=\(app.ipv4):"))
            #expect(try sluice.stat("sluice.workload.\(app.namespace).outbound_cx_total") == 2)
        }
    }

    @Test func enrolledToEnrolledGoesThroughTheCallersProxy() throws {
        try withTopology("ipvs-e2e") { topology in
            let a = try topology.addHost("a")
            let b = try topology.addHost("b")
            try Self.addServiceRoutes(topology, a)
            try Self.addServiceRoutes(topology, b)
            let sluice = try SluiceUnderTest(topology: topology, config: Self.bootstrap(server: b, port: 9000))
            try sluice.startUp()
            try sluice.startServer(on: b, port: 9000)
            try sluice.enroll(a, Self.services)
            try sluice.enroll(b, Self.services)
            // A → service → A's proxy → B's address. B's inbound is not captured: IPVS would
            // capture the proxy's own connection to B again (it has no mark match).
            let reply = try sluice.client(from: a, to: "\(Self.vipV4):80", "WHO")
            #expect(reply.hasPrefix("peer=\(a.ipv4):"), "\(reply)")
            #expect(try sluice.stat("sluice.workload.\(a.namespace).outbound_cx_total") == 1)
            #expect(try sluice.stat("sluice.workload.\(b.namespace).inbound_cx_total") == 0)
        }
    }

    @Test func excludedPortsAndCIDRsGetNoVirtualService() throws {
        try withTopology("ipvs-exclude") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            try Self.addServiceRoutes(topology, app)
            let sluice = try SluiceUnderTest(topology: topology, config: Self.bootstrap(server: server, port: 8080))
            try sluice.startUp()
            // The proxy's own service addresses are subject to the exclusions too (fd96::1:80).
            try sluice.enroll(app, [
                "--mode", "ipvs", "--services", "\(Self.vipV4):80,10.96.0.2:9090,10.97.0.1:80",
                "--exclude-ports", "9090", "--exclude-cidrs", "10.97.0.0/16,fd96::/64",
            ])
            let services = try Self.virtualServices(topology, app)
            #expect(services.count == 1, "\(services)")
            #expect(services.first?.contains("0A600001:0050") == true, "\(services)")
        }
    }

    /// Without `--services` the proxy's configuration decides: each `bind_to_port: false`
    /// listener at a specific address is a service; a wildcard one (a port on every address)
    /// cannot be an IPVS service and is left out.
    @Test func serviceAddressesComeFromTheProxysConfiguration() throws {
        try withTopology("ipvs-known") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            try Self.addServiceRoutes(topology, app)
            let wildcard = """
                  - name: any_8081
                    address: { socket_address: { address: 0.0.0.0, port_value: 8081 } }
                    bind_to_port: false
                    filter_chains:
                    - filters:
                      - name: envoy.filters.network.tcp_proxy
                        typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: any, cluster: backend_v4 }

                """
            let config = Self.bootstrap(server: server, port: 8080).replacingOccurrences(of: "  clusters:\n", with: wildcard + "  clusters:\n")
            let sluice = try SluiceUnderTest(topology: topology, config: config)
            try sluice.startUp()
            try sluice.startServer(on: server, port: 8080)
            try sluice.enroll(app, ["--mode", "ipvs"])
            let services = try Self.virtualServices(topology, app)
            #expect(services.count == 2, "the two VIP listeners, not the wildcard one: \(services)")
            #expect(services.contains { $0.contains("0A600001:0050") }, "\(services)")
            let reply = try sluice.client(from: app, to: "\(Self.vipV4):80", "WHO")
            #expect(reply.hasPrefix("peer=\(app.ipv4):") && reply.contains("local=\(server.ipv4):8080"), "\(reply)")
            let replyV6 = try sluice.client(from: app, to: "[\(Self.vipV6)]:80", "WHO")
            #expect(replyV6.hasPrefix("peer=[\(app.ipv6)]:"), "\(replyV6)")
            let listing = try sluice.cli(["workloads", "--json"])
            #expect(listing.contains("proxyServiceAddresses") && listing.contains("10.96.0.1"), "\(listing)")

            try sluice.unenroll(app)
            #expect(try Self.virtualServices(topology, app).isEmpty)
            #expect(try Self.routesAndTables(topology, app).isEmpty)
        }
    }

    /// An xDS update that adds or removes a service listener reprograms the enrolled workload's
    /// virtual services.
    @Test func anXDSUpdateReprogramsTheServices() throws {
        try withTopology("ipvs-xds") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            try Self.addServiceRoutes(topology, app)
            let sluice = try SluiceUnderTest(topology: topology, config: XDSHarness.nodeBootstrap)
            // Importing grpcio and the Envoy protos takes minutes in the VM (TCG, files over 9p).
            _ = try XDSHarness.startNodeControlPlane(topology, in: sluice.node, readyTimeout: 120)
            func push(_ type: String, _ version: String, _ resources: [String]) throws {
                try XDSHarness.push(topology, in: sluice.node, type, version, resources)
            }
            let typePrefix = XDSHarness.typePrefix
            let capture = """
                {"@type": "\(typePrefix)envoy.config.listener.v3.Listener", "name": "outbound",
                 "address": {"socket_address": {"address": "0.0.0.0", "port_value": 15001}}, "use_original_dst": true,
                 "listener_filters": [{"name": "envoy.filters.listener.original_dst", "typed_config": {"@type": "\(typePrefix)envoy.extensions.filters.listener.original_dst.v3.OriginalDst"}}],
                 "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                   "@type": "\(typePrefix)envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", "stat_prefix": "outbound", "cluster": "passthrough"}}]}]}
                """
            func service(_ address: String) -> String {
                XDSHarness.listener("\(address)_80", port: 80, cluster: "backend")
                    .replacingOccurrences(of: "\"127.0.0.1\"", with: "\"\(address)\"")
                    .replacingOccurrences(of: "\"filter_chains\"", with: "\"bind_to_port\": false, \"filter_chains\"")
            }
            let clusters = [
                """
                {"@type": "\(typePrefix)envoy.config.cluster.v3.Cluster", "name": "passthrough", "type": "ORIGINAL_DST",
                 "lb_policy": "CLUSTER_PROVIDED", "connect_timeout": "1s"}
                """,
                """
                {"@type": "\(typePrefix)envoy.config.cluster.v3.Cluster", "name": "backend", "type": "STATIC", "connect_timeout": "1s",
                 "load_assignment": {"cluster_name": "backend", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "\(server.ipv4)", "port_value": 8080}}}}]}]}}
                """,
            ]
            try push("cds", "v1", clusters)
            try push("lds", "v1", [capture, service("10.96.0.1")])
            try sluice.startServer(on: server, port: 8080)
            try sluice.startAgent()
            try sluice.startProxy()
            try eventually("the proxy connects to the agent") { try sluice.cli(["workloads"]).contains("proxy: connected") }
            try sluice.enroll(app, ["--mode", "ipvs"])
            #expect(try Self.virtualServices(topology, app).count == 1)
            #expect(try sluice.client(from: app, to: "10.96.0.1:80", "WHO").hasPrefix("peer=\(app.ipv4):"))

            try push("lds", "v2", [capture, service("10.96.0.1"), service("10.96.0.2")])
            try eventually("the new service address is programmed") { try Self.virtualServices(topology, app).count == 2 }
            let added = try sluice.client(from: app, to: "10.96.0.2:80", "WHO")
            #expect(added.hasPrefix("peer=\(app.ipv4):") && added.contains("local=\(server.ipv4):8080"), "\(added)")

            try push("lds", "v3", [capture, service("10.96.0.2")])
            try eventually("the removed service address is unprogrammed") {
                let services = try Self.virtualServices(topology, app)
                return services.count == 1 && services[0].contains("0A600002:0050")
            }
            try sluice.unenroll(app)
            #expect(try Self.virtualServices(topology, app).isEmpty)
            #expect(try Self.routesAndTables(topology, app).isEmpty)
        }
    }

    @Test func badServiceListsAreRejectedNamingTheProblem() throws {
        try withTopology("ipvs-bad") { topology in
            let app = try topology.addHost("app")
            let noServices = try Shell.run([SluiceUnderTest.binary, "rules", "install", "--netns", app.namespace, "--mode", "ipvs"])
            #expect(noServices.status != 0)
            #expect((noServices.stdout + noServices.stderr).contains("--services"))
            let loopback = try Shell.run([
                SluiceUnderTest.binary, "rules", "install", "--netns", app.namespace, "--mode", "ipvs", "--services", "127.0.0.1:80",
            ])
            #expect(loopback.status != 0)
            #expect((loopback.stdout + loopback.stderr).contains("127.0.0.1:80"))
            #expect(try Self.virtualServices(topology, app).isEmpty)
        }
    }

    @Test func installIsIdempotentAndRemovalLeavesNothing() throws {
        try withTopology("ipvs-idem") { topology in
            let app = try topology.addHost("app")
            let rules = [SluiceUnderTest.binary, "rules"]
            let target = ["--netns", app.namespace] + Self.services
            try Shell.check(rules + ["install"] + target)
            let first = try Self.virtualServices(topology, app)
            try Shell.check(rules + ["install"] + target)
            #expect(try Self.virtualServices(topology, app) == first)
            #expect(first.count == 2)
            #expect(try Self.routesAndTables(topology, app).count == 3, "two local routes and the conntrack table")
            #expect(try Shell.check(rules + ["verify"] + target).contains("installed"))

            try Shell.check(rules + ["remove"] + target)
            #expect(try Self.virtualServices(topology, app).isEmpty)
            #expect(try Self.routesAndTables(topology, app).isEmpty)
            #expect(try Self.conntrackSysctl(topology, app) == "0")
            try Shell.check(rules + ["remove"] + target)
            let verify = try Shell.run(rules + ["verify"] + target)
            #expect(verify.status == 1 && verify.stdout.contains("absent"), "\(verify)")
        }
    }

    @Test func unenrollRemovesTheServicesAndAgentRestartRepairsThem() throws {
        try withTopology("ipvs-restart") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            try Self.addServiceRoutes(topology, app)
            let sluice = try SluiceUnderTest(topology: topology, config: Self.bootstrap(server: server, port: 8080))
            try sluice.startAgent()
            try sluice.startProxy()
            try sluice.startServer(on: server, port: 8080)
            try sluice.enroll(app, Self.services)
            let installed = try Self.virtualServices(topology, app)

            // Drift while the agent is away: the restarted agent reinstalls what is missing.
            sluice.agent?.stop(signal: SIGKILL)
            try Shell.check([SluiceUnderTest.binary, "rules", "remove", "--netns", app.namespace] + Self.services)
            #expect(try Self.virtualServices(topology, app).isEmpty)
            try sluice.startAgent()
            try eventually("the restarted agent reinstalls the services") {
                try Self.virtualServices(topology, app) == installed
            }
            try eventually("the proxy reconnects to the restarted agent") {
                try sluice.cli(["workloads"]).contains("proxy: connected")
            }
            let reply = try sluice.client(from: app, to: "\(Self.vipV4):80", "WHO")
            #expect(reply.hasPrefix("peer=\(app.ipv4):"), "\(reply)")

            try sluice.unenroll(app)
            #expect(try Self.virtualServices(topology, app).isEmpty)
            #expect(try Self.routesAndTables(topology, app).isEmpty)
            #expect(try Self.conntrackSysctl(topology, app) == "0")
        }
    }
}

/// On a kernel without IPVS the mode fails saying so, and leaves nothing behind.
@Suite(.enabled(if: !IPVSKernel.available, "this kernel has IPVS; IPVSCaptureTests cover it"))
struct IPVSUnavailableTests {
    @Test func installNamesTheMissingKernelSupport() throws {
        try #require(geteuid() == 0, "end-to-end tests need root: they create network namespaces")
        try withTopology("ipvs-missing") { topology in
            let app = try topology.addHost("app")
            let result = try Shell.run([
                SluiceUnderTest.binary, "rules", "install", "--netns", app.namespace, "--mode", "ipvs", "--services", "10.96.0.1:80",
            ])
            #expect(result.status != 0)
            #expect((result.stdout + result.stderr).contains("no IPVS"), "\(result.stdout)\(result.stderr)")
            #expect(try IPVSCaptureTests.routesAndTables(topology, app).isEmpty)
        }
    }
}
