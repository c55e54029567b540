@testable import SluiceAdmin
import SluiceProxy
import Testing

@Suite struct StatsFormatterTests {
    static let entries: [StatEntry] = [
        (.cluster("backend", "upstream_cx_total"), .counter(7)),
        (StatName(scope: "server", leaf: "live"), .gauge(1)),
        (.listener("0.0.0.0_15001", "downstream_cx_total"), .counter(0)),
        (.cluster("backend", "upstream_cx_active"), .gauge(2)),
        (.tcp("outbound", "downstream_cx_total"), .counter(3)),
    ]

    @Test func textIsSortedByDottedName() {
        #expect(StatsFormatter.text(Self.entries) == """
            cluster.backend.upstream_cx_active: 2
            cluster.backend.upstream_cx_total: 7
            listener.0.0.0.0_15001.downstream_cx_total: 0
            server.live: 1
            tcp.outbound.downstream_cx_total: 3

            """)
    }

    @Test func filterMatchesAnywhereAndUsedOnlyDropsZeros() throws {
        let filtered = StatsSelection(filter: try Regex("cx_total"), usedOnly: true).apply(Self.entries)
        #expect(filtered.map(\.name.description) == ["cluster.backend.upstream_cx_total", "tcp.outbound.downstream_cx_total"])
    }

    @Test func requestParametersSelect() throws {
        let request = AdminRequest(method: .GET, uri: "/stats?filter=%5Ecluster%5C.&usedonly", peerIsPrivileged: false)
        let selection = try StatsSelection(request: request)
        #expect(selection.usedOnly)
        #expect(selection.apply(Self.entries).count == 2)
    }

    @Test func invalidRegexIsNamed() {
        let request = AdminRequest(method: .GET, uri: "/stats?filter=(unclosed", peerIsPrivileged: false)
        do {
            _ = try StatsSelection(request: request)
            Issue.record("expected an error")
        } catch {
            #expect(error.message.hasPrefix("Invalid regex: (unclosed"))
        }
    }

    @Test func jsonHasNumericValues() {
        let json = StatsFormatter.json([(.cluster("b\"x", "upstream_cx_total"), .counter(5)), (StatName(scope: "server", leaf: "live"), .gauge(-1))])
        #expect(json == #"{"stats":[{"name":"cluster.b\"x.upstream_cx_total","value":5},{"name":"server.live","value":-1}]}"#)
    }
}
