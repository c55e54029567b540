import Foundation
import Logging
import NIOConcurrencyHelpers
@testable import SluiceAdmin
import SluiceConfig
import SluiceModel
import SluiceProxy
import Testing

/// Real servers on loopback, driven by curl (and one raw socket for malformed HTTP).
@Suite(.serialized) struct AdminServerTests {
    static let bootstrap = """
        static_resources:
          listeners:
          - name: local
            address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
            filter_chains:
            - filters:
              - name: envoy.filters.network.tcp_proxy
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
                  stat_prefix: local
                  cluster: backend
          clusters:
          - name: backend
            type: STATIC
            connect_timeout: 1s
            load_assignment:
              cluster_name: backend
              endpoints:
              - lb_endpoints:
                - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9 } } }
        """

    /// Counts `requestShutdown` calls.
    final class ShutdownProbe: Sendable {
        private let calls = NIOLockedValueBox(0)
        func record() { calls.withLockedValue { $0 += 1 } }
        var count: Int { calls.withLockedValue { $0 } }
    }

    /// Starts a proxy and an admin server on `address`, runs `body`, and always stops both.
    static func withServers(
        address: AdminAddress,
        _ body: (AdminServer, ProxyServer, ShutdownProbe, AdminContext) async throws -> Void
    ) async throws {
        let loaded = try BootstrapLoader.load(text: bootstrap)
        let proxy = ProxyServer(configuration: loaded.configuration, placement: .proxyNamespace)
        let probe = ShutdownProbe()
        let context = AdminContext(proxy: proxy, bootstrap: loaded, startTime: Date()) { probe.record() }
        var admin: AdminServer?
        do {
            try await proxy.start()
            let server = try await AdminServer.start(address: address, context: context, logger: Logger(label: "test.admin"))
            admin = server
            try await body(server, proxy, probe, context)
        } catch {
            await admin?.shutdown()
            await proxy.shutdown()
            throw error
        }
        await admin?.shutdown()
        await proxy.shutdown()
    }

    struct Reply {
        var status: Int
        var contentType: String
        var body: String
    }

    static func curl(_ arguments: [String]) throws -> Reply {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-sS", "--max-time", "10", "-w", "\n%{http_code} %{content_type}"] + arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        let split = text.range(of: "\n", options: .backwards)!
        let trailer = text[split.upperBound...].split(separator: " ", maxSplits: 1)
        return Reply(
            status: Int(trailer.first ?? "") ?? 0,
            contentType: trailer.count > 1 ? String(trailer[1]) : "",
            body: String(text[..<split.lowerBound]))
    }

    @Test func servesEndpointsOverLoopback() async throws {
        try await Self.withServers(address: .tcp(SocketEndpoint("127.0.0.1:0")!)) { admin, proxy, probe, _ in
            #expect(admin.boundAddress.hasPrefix("127.0.0.1:"))
            #expect(!admin.boundAddress.hasSuffix(":0"))
            let base = "http://\(admin.boundAddress)"

            let ready = try Self.curl(["\(base)/ready"])
            #expect(ready.status == 200)
            #expect(ready.body == "LIVE\n")

            let stats = try Self.curl(["\(base)/stats"])
            #expect(stats.status == 200)
            #expect(stats.contentType.hasPrefix("text/plain"))
            #expect(stats.body.contains("cluster.backend.membership_total: 1\n"))
            #expect(stats.body.contains("server.live: 1\n"))
            let lines = stats.body.split(separator: "\n").map { String($0.split(separator: ":")[0]) }
            #expect(lines == lines.sorted())

            let filtered = try Self.curl(["\(base)/stats?filter=membership&format=json"])
            #expect(filtered.contentType == "application/json")
            #expect(filtered.body.contains(#"{"name":"cluster.backend.membership_total","value":1}"#))
            #expect(!filtered.body.contains("server.live"))
            #expect(try Self.curl(["\(base)/stats?filter=(oops"]).status == 400)

            let prometheus = try Self.curl(["\(base)/stats/prometheus"])
            #expect(prometheus.status == 200)
            #expect(prometheus.body.contains("envoy_cluster_membership_total{envoy_cluster_name=\"backend\"} 1.0\n"))
            #expect(prometheus.body.contains("envoy_server_live 1.0\n"))

            let dump = try Self.curl(["\(base)/config_dump"])
            #expect(dump.status == 200)
            #expect(dump.body.contains(#""@type":"type.googleapis.com/envoy.admin.v3.ClustersConfigDump""#))
            #expect(dump.body.contains(#""name":"backend""#))

            let listeners = try Self.curl(["\(base)/listeners"])
            let bound = try #require(proxy.hostListenerAddresses.first?.addresses.first)
            #expect(listeners.body == "local::\(bound)\n")

            let clusters = try Self.curl(["\(base)/clusters"])
            #expect(clusters.body.contains("backend::127.0.0.1:9::health_flags::healthy\n"))
            #expect(try Self.curl(["\(base)/clusters?format=json"]).body.contains(#""cluster_statuses""#))
            #expect(try Self.curl(["\(base)/sluice/workloads"]).body == "[]")

            let unknown = try Self.curl(["\(base)/nope"])
            #expect(unknown.status == 404)
            #expect(unknown.body.hasPrefix("invalid path. admin commands are:\n"))
            #expect(try Self.curl(["\(base)/help"]).body.contains("  /quitquitquit (POST): exit the server\n"))

            let get = try Self.curl(["\(base)/quitquitquit"])
            #expect(get.status == 405)
            #expect(get.body == "Method GET not allowed, POST required.")
            #expect(probe.count == 0)

            let post = try Self.curl(["-X", "POST", "\(base)/quitquitquit"])
            #expect(post.status == 200)
            #expect(post.body == "OK\n")
            // The callback runs after the reply is written, on a detached task.
            for _ in 0..<200 where probe.count == 0 { try await Task.sleep(for: .milliseconds(10)) }
            #expect(probe.count == 1)
        }
    }

    @Test func postsFromUnprivilegedPeersAreRefused() async throws {
        try await Self.withServers(address: .tcp(SocketEndpoint("127.0.0.1:0")!)) { _, _, probe, context in
            let router = AdminRouter(context: context, logger: Logger(label: "test.router"))
            let refused = router.respond(to: AdminRequest(method: .POST, uri: "/quitquitquit", peerIsPrivileged: false))
            #expect(refused.status == .forbidden)
            #expect(router.respond(to: AdminRequest(method: .POST, uri: "/stats", peerIsPrivileged: false)).status == .forbidden)
            #expect(router.respond(to: AdminRequest(method: .GET, uri: "/stats", peerIsPrivileged: false)).status == .ok)
            #expect(probe.count == 0)
        }
    }

    @Test func loopbackPeersArePrivileged() throws {
        #expect(PeerCheck.isPrivileged(tcpPeer: try .init(ipAddress: "127.0.0.1", port: 1)))
        #expect(PeerCheck.isPrivileged(tcpPeer: try .init(ipAddress: "127.8.9.10", port: 1)))
        #expect(PeerCheck.isPrivileged(tcpPeer: try .init(ipAddress: "::1", port: 1)))
        #expect(PeerCheck.isPrivileged(tcpPeer: try .init(ipAddress: "::ffff:127.0.0.1", port: 1)))
        #expect(!PeerCheck.isPrivileged(tcpPeer: try .init(ipAddress: "10.1.2.3", port: 1)))
        #expect(!PeerCheck.isPrivileged(tcpPeer: try .init(ipAddress: "::ffff:10.1.2.3", port: 1)))
        #expect(!PeerCheck.isPrivileged(tcpPeer: nil))
        #expect(PeerCheck.isPrivileged(uid: 0))
        #expect(!PeerCheck.isPrivileged(uid: 65534) || getuid() == 65534)
    }

    @Test func malformedRequestGets400AndServerKeepsServing() async throws {
        try await Self.withServers(address: .tcp(SocketEndpoint("127.0.0.1:0")!)) { admin, _, _, _ in
            let reply = try RawClient.exchange(port: SocketEndpoint(admin.boundAddress)!.port, send: "THIS IS NOT HTTP\r\n\r\n")
            #expect(reply.hasPrefix("HTTP/1.1 400"))
            #expect(try Self.curl(["http://\(admin.boundAddress)/ready"]).status == 200)
        }
    }

    @Test func unixSocketHasModeReplacesStaleFileAndChecksCredentials() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-admin-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("admin.sock").path
        try await Self.withServers(address: .unixSocket(path: path, mode: 0o600)) { stale, _, _, context in
            // A second server takes the path over, as after a crash or during an upgrade.
            let admin = try await AdminServer.start(
                address: .unixSocket(path: path, mode: 0o600), context: context, logger: Logger(label: "test.admin2"))
            do {
                #expect(admin.boundAddress == path)
                let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
                #expect(mode == 0o600)
                let ready = try Self.curl(["--unix-socket", path, "http://admin/ready"])
                #expect(ready.body == "LIVE\n")
                // Tests run as root (or as ourselves): SO_PEERCRED lets the POST through.
                #expect(try Self.curl(["--unix-socket", path, "-X", "POST", "http://admin/quitquitquit"]).status == 200)
                // The replaced server must not remove the socket file that is no longer its own.
                await stale.shutdown()
                #expect(FileManager.default.fileExists(atPath: path))
            } catch {
                await admin.shutdown()
                throw error
            }
            await admin.shutdown()
            #expect(!FileManager.default.fileExists(atPath: path))
        }
    }
}

/// A blocking loopback TCP exchange: send bytes, read until the server closes.
enum RawClient {
    static func exchange(port: UInt16, send: String) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        _ = send.withCString { write(fd, $0, strlen($0)) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count <= 0 { break }
            received += buffer[0..<count]
        }
        return String(decoding: received, as: UTF8.self)
    }
}
