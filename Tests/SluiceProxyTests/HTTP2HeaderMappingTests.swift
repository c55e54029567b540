import NIOHPACK
import NIOHTTP1
@testable import SluiceProxy
import Testing

/// How an HTTP/2 stream's header blocks map to the request heads streams work on, and back.
@Suite struct HTTP2HeaderMappingTests {
    private static func block(_ pairs: [(String, String)]) -> HPACKHeaders { HPACKHeaders(pairs) }

    @Test func requestHeadTakesPseudoHeadersAndAddsHostFromTheAuthority() throws {
        let head = try #require(HTTP2HeaderMapping.requestHead(Self.block([
            (":method", "GET"), (":scheme", "http"), (":authority", "example.com:8080"), (":path", "/a?b=1"),
            ("x-one", "1"), ("cookie", "a=1"), ("cookie", "b=2"),
        ]), endStream: true))
        #expect(head.method == .GET)
        #expect(head.uri == "/a?b=1")
        #expect(head.version == HTTPVersion(major: 2, minor: 0))
        #expect(head.headers.map { "\($0.name): \($0.value)" } == ["host: example.com:8080", "x-one: 1", "cookie: a=1", "cookie: b=2"])
    }

    @Test func requestHeadFramesBodiesOfMethodsThatMayCarryOne() throws {
        let base = [(":method", "POST"), (":scheme", "http"), (":authority", "a"), (":path", "/")]
        let open = try #require(HTTP2HeaderMapping.requestHead(Self.block(base), endStream: false))
        #expect(open.headers["transfer-encoding"] == ["chunked"])
        let ended = try #require(HTTP2HeaderMapping.requestHead(Self.block(base), endStream: true))
        #expect(ended.headers["content-length"] == ["0"])
        let sized = try #require(HTTP2HeaderMapping.requestHead(Self.block(base + [("content-length", "5")]), endStream: false))
        #expect(sized.headers["content-length"] == ["5"])
        #expect(sized.headers["transfer-encoding"].isEmpty)
        let host = try #require(HTTP2HeaderMapping.requestHead(Self.block(base + [("host", "b")]), endStream: true))
        #expect(host.headers["host"] == ["b"])
    }

    @Test func requestHeadNeedsEveryRequestPseudoHeader() {
        let all = [(":method", "GET"), (":scheme", "http"), (":authority", "a"), (":path", "/")]
        for missing in all.indices {
            var pairs = all
            pairs.remove(at: missing)
            #expect(HTTP2HeaderMapping.requestHead(Self.block(pairs), endStream: true) == nil, "without \(all[missing].0)")
        }
    }

    @Test func responseBlocksAreLowercaseWithoutConnectionSpecificFields() {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/plain")
        headers.add(name: "Connection", value: "keep-alive, X-Hop")
        headers.add(name: "X-Hop", value: "1")
        headers.add(name: "Keep-Alive", value: "timeout=5")
        headers.add(name: "Transfer-Encoding", value: "chunked")
        headers.add(name: "x-kept", value: "yes")
        let block = HTTP2HeaderMapping.headerBlock(headers, status: 200)
        #expect(block.map { "\($0.name): \($0.value)" } == [":status: 200", "content-type: text/plain", "x-kept: yes"])
        let trailers = HTTP2HeaderMapping.headerBlock(["Grpc-Status": "0"], status: nil)
        #expect(trailers.map { "\($0.name): \($0.value)" } == ["grpc-status: 0"])
    }

    @Test func fieldsThatChangeWithEveryResponseStayOutOfTheDynamicTable() {
        let headers: HTTPHeaders = ["Date": "Mon, 23 Nov 2026 12:00:00 GMT", "x-envoy-upstream-service-time": "1", "content-type": "a"]
        let indexing = Dictionary(uniqueKeysWithValues: HTTP2HeaderMapping.headerBlock(headers, status: 200).map { ($0.name, $0.indexable) })
        #expect(indexing["date"] == .nonIndexable)
        #expect(indexing["x-envoy-upstream-service-time"] == .nonIndexable)
        #expect(indexing["content-type"] == .indexable)
    }
}

/// Which request header blocks and trailers are malformed (RFC 9113 § 8.2–8.3); NIO's own
/// header validation is off, so these checks are the only ones.
@Suite struct HTTP2RequestValidationTests {
    private static let base = [(":method", "GET"), (":scheme", "http"), (":authority", "a"), (":path", "/")]

    private static func head(_ pairs: [(String, String)]) -> HTTPRequestHead? {
        HTTP2HeaderMapping.requestHead(HPACKHeaders(pairs), endStream: true)
    }

    @Test func aWellFormedBlockPasses() {
        #expect(Self.head(Self.base + [("x-a", "b c"), ("te", "trailers"), ("accept", "*/*")]) != nil)
    }

    @Test(arguments: [
        [("X-Upper", "1")], [("bad name", "1")], [("", "1")], [("x-a", "a\r\nb")], [("x-a", "a\u{0}")],
        [("connection", "close")], [("keep-alive", "5")], [("proxy-connection", "x")], [("transfer-encoding", "chunked")],
        [("upgrade", "websocket")], [("te", "gzip")],
    ])
    func malformedRegularFieldsAreRejected(_ extra: [(String, String)]) {
        #expect(Self.head(Self.base + extra) == nil)
    }

    @Test func pseudoHeadersMustComeFirstOnceEachAndBeKnown() {
        #expect(Self.head([("x-a", "1")] + Self.base) == nil)
        #expect(Self.head(Self.base + [(":path", "/b")]) == nil)
        #expect(Self.head(Self.base + [(":status", "200")]) == nil)
        #expect(Self.head([(":method", "GET"), (":scheme", "http"), (":authority", "a"), (":path", "")]) == nil)
        #expect(Self.head([(":method", "GET"), (":scheme", "http"), (":authority", "a"), (":path", "/a b")]) == nil)
        #expect(Self.head([(":method", "GET"), (":scheme", "http"), (":authority", "a")]) == nil)
    }

    @Test func trailersCarryNoPseudoHeadersOrForbiddenFields() {
        #expect(HTTP2HeaderMapping.requestTrailers(HPACKHeaders([("grpc-status", "0")]))?.first(name: "grpc-status") == "0")
        #expect(HTTP2HeaderMapping.requestTrailers(HPACKHeaders([(":path", "/")])) == nil)
        #expect(HTTP2HeaderMapping.requestTrailers(HPACKHeaders([("Upper", "1")])) == nil)
    }
}
