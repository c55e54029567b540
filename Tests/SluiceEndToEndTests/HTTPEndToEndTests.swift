import Foundation
import Testing

/// HTTP applications through the shared proxy, captured transparently (iptables mode): gRPC
/// (grpcio), HTTP/2 (nghttp, h2load), WebSocket upgrade, and large bodies both ways with a slow
/// reader on each side. The application and server are unmodified programs in their own
/// namespaces; the proxy's HTTP listeners receive the captured connections by original
/// destination port, as Istio's per-port outbound listeners do.
@Suite(.serialized) struct HTTPEndToEndTests {
    init() throws {
        try #require(geteuid() == 0, "end-to-end tests need root: they create network namespaces and capture rules")
        try #require(FileManager.default.isExecutableFile(atPath: SluiceUnderTest.binary), "build sluice first: \(SluiceUnderTest.binary)")
    }

    static var tools: URL { URL(fileURLWithPath: SluiceUnderTest.tcpkit).deletingLastPathComponent() }
    static var grpckit: String { tools.appendingPathComponent("grpckit.py").path }
    static var httpkit: String { tools.appendingPathComponent("httpkit.py").path }

    /// Capture listeners plus HTTP listeners for ports 8080 (gRPC / HTTP/2 end to end, the
    /// upstream speaks what the client spoke) and 8081 (HTTP/1.1 upstream, WebSocket allowed).
    static let bootstrap = """
        admin:
          address: { socket_address: { address: 127.0.0.1, port_value: 15000 } }
        static_resources:
          listeners:
          - name: outbound
            address: { socket_address: { address: 0.0.0.0, port_value: 15001 } }
            use_original_dst: true
            listener_filters:
            - name: envoy.filters.listener.original_dst
              typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst }
            filter_chains:
            - filters:
              - name: envoy.filters.network.tcp_proxy
                typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: passthrough, cluster: passthrough }
          - name: inbound
            address: { socket_address: { address: 0.0.0.0, port_value: 15006 } }
            listener_filters:
            - name: envoy.filters.listener.original_dst
              typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst }
            filter_chains:
            - filters:
              - name: envoy.filters.network.tcp_proxy
                typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: inbound, cluster: passthrough }
        \(httpListener(port: 8080, cluster: "same_protocol"))
        \(httpListener(port: 8081, cluster: "http1", upgrades: true))
          clusters:
          - { name: passthrough, type: ORIGINAL_DST, lb_policy: CLUSTER_PROVIDED, connect_timeout: 2s }
          - name: same_protocol
            type: ORIGINAL_DST
            lb_policy: CLUSTER_PROVIDED
            connect_timeout: 2s
            typed_extension_protocol_options:
              envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
                "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
                use_downstream_protocol_config: {}
          - { name: http1, type: ORIGINAL_DST, lb_policy: CLUSTER_PROVIDED, connect_timeout: 2s }
        """

    static func httpListener(port: Int, cluster: String, upgrades: Bool = false) -> String {
        """
          - name: 0.0.0.0_\(port)
            address: { socket_address: { address: 0.0.0.0, port_value: \(port) } }
            bind_to_port: false
            filter_chains:
            - filters:
              - name: envoy.filters.network.http_connection_manager
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                  stat_prefix: outbound_\(port)
                  codec_type: AUTO\(upgrades ? "\n          upgrade_configs: [{ upgrade_type: websocket }]" : "")
                  route_config:
                    name: local_\(port)
                    virtual_hosts: [{ name: all, domains: ["*"], routes: [{ match: { prefix: "/" }, route: { cluster: \(cluster), timeout: 0s } }] }]
                  http_filters:
                  - name: envoy.filters.http.router
                    typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
        """
    }

    /// `VmHWM` of a process: the most it was ever resident, in KiB.
    static func peakResidentKiB(_ pid: Int32) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") })
        return try #require(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
    }

    @Test func grpcCallsOfEveryShapeWorkThroughTheProxy() throws {
        try withTopology("http-grpc") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            let sluice = try SluiceUnderTest(topology: topology, config: Self.bootstrap)
            try sluice.startUp()
            let process = try topology.spawn("grpc-server", in: server.namespace, [
                XDSHarness.python, Self.grpckit, "server", "--port", "8080",
            ])
            try eventually("grpc server", timeout: 30) { process.log.contains("ready") }
            try sluice.enroll(app)
            let output = try topology.exec(app.namespace, [
                XDSHarness.python, Self.grpckit, "client", "--target", "\(server.ipv4):8080", "--rounds", "5",
            ], timeout: 120)
            #expect(output.contains("\"failures\": []"), "\(output)")
            #expect(output.contains("\"bidi\": 5"))
            #expect(try sluice.stat("http.outbound_8080.downstream_cx_http2_total") >= 1)
            #expect(try sluice.stat("http.outbound_8080.downstream_rq_total") >= 25)
            #expect(try sluice.stat("cluster.same_protocol.upstream_cx_http2_total") >= 1)
        }
    }

    @Test func http2ClientsAndWebSocketsAndLargeBodies() throws {
        try withTopology("http-h2") { topology in
            let app = try topology.addHost("app")
            let server = try topology.addHost("srv")
            let sluice = try SluiceUnderTest(topology: topology, config: Self.bootstrap)
            try sluice.startUp()
            let process = try topology.spawn("http-server", in: server.namespace, [
                "python3", Self.httpkit, "server", "--port", "8081", "--name", "srv",
            ])
            try eventually("http server") { process.log.contains("ready") }
            try sluice.enroll(app)
            let base = "http://\(server.ipv4):8081"

            // HTTP/2 with prior knowledge from nghttp, HTTP/1.1 upstream.
            let nghttp = try topology.exec(app.namespace, ["nghttp", "-v", "\(base)/hello"])
            #expect(nghttp.contains("hello from srv"), "\(nghttp)")
            #expect(nghttp.contains(":status: 200"))

            // h2load: 2,000 requests over 4 connections, 10 streams each.
            let load = try topology.exec(app.namespace, ["h2load", "-n", "2000", "-c", "4", "-m", "10", "\(base)/hello"], timeout: 120)
            #expect(load.contains("2000 succeeded, 0 failed, 0 errored"), "\(load)")

            // WebSocket upgrade, then 1 MiB echoed through the tunnel.
            let ws = try topology.exec(app.namespace, ["python3", Self.httpkit, "websocket", "--host", server.ipv4, "--port", "8081"])
            #expect(ws.trimmingCharacters(in: .whitespacesAndNewlines) == "ok", "\(ws)")

            // An HTTP/2 stream read slowly holds back the upstream as an HTTP/1 connection does.
            // First of the large bodies: freed memory stays in the heap and would hide the peak.
            let proxyPID = try #require(sluice.proxy?.pid)
            let peakBeforeH2Download = try Self.peakResidentKiB(proxyPID)
            let h2download = try topology.exec(app.namespace, [
                "curl", "-sS", "--http2-prior-knowledge", "--limit-rate", "8M", "-o", "/dev/null", "-w", "%{size_download}",
                "\(base)/bytes/\(32 << 20)",
            ], timeout: 120)
            #expect(h2download == "\(32 << 20)", "\(h2download)")
            let peakAfterH2Download = try Self.peakResidentKiB(proxyPID)
            #expect(peakAfterH2Download - peakBeforeH2Download < 16 << 10, "peak RSS grew \(peakAfterH2Download - peakBeforeH2Download) KiB during the HTTP/2 download")

            // 32 MiB each way, the server reading the upload slowly and the client the download.
            // The proxy holds back reading from the fast side, so its peak memory grows by far
            // less than the body (it would grow by about all of it if it buffered).
            let peakBefore = try Self.peakResidentKiB(proxyPID)
            let upload = try topology.exec(app.namespace, [
                "python3", Self.httpkit, "upload", "--url", "\(base)/sink/slow", "--size", "\(32 << 20)",
            ], timeout: 120)
            #expect(upload.trimmingCharacters(in: .whitespacesAndNewlines) == "ok", "\(upload)")
            let peakAfterUpload = try Self.peakResidentKiB(proxyPID)
            #expect(peakAfterUpload - peakBefore < 16 << 10, "peak RSS grew \(peakAfterUpload - peakBefore) KiB during the upload")
            let download = try topology.exec(app.namespace, [
                "python3", Self.httpkit, "download", "--url", "\(base)/bytes/\(32 << 20)", "--size", "\(32 << 20)", "--slow",
            ], timeout: 120)
            #expect(download.trimmingCharacters(in: .whitespacesAndNewlines) == "ok", "\(download)")
            let peakAfterDownload = try Self.peakResidentKiB(proxyPID)
            #expect(peakAfterDownload - peakAfterUpload < 16 << 10, "peak RSS grew \(peakAfterDownload - peakAfterUpload) KiB during the download")
            // HTTP/2 large bodies, curl with prior knowledge; the upload waits on a slow server.
            let h2upload = try topology.exec(app.namespace, [
                "sh", "-c", "head -c \(16 << 20) /dev/zero | curl -sS --http2-prior-knowledge --data-binary @- \(base)/sink/slow",
            ], timeout: 120)
            #expect(h2upload.hasPrefix("\(16 << 20) "), "\(h2upload)")
            #expect(try sluice.stat("http.outbound_8081.downstream_cx_http2_total") >= 5)
            #expect(try sluice.stat("http.outbound_8081.downstream_cx_http1_total") >= 3)
        }
    }
}
