import NIOHPACK
import NIOHTTP1
@testable import SluiceProxy
import Testing

/// How an HTTP/2 stream's header blocks map to the request heads streams work on, and back.
@Suite struct HTTP2DownstreamStreamHandlerTests {
    private static func block(_ pairs: [(String, String)]) -> HPACKHeaders { HPACKHeaders(pairs) }

    @Test func requestHeadTakesPseudoHeadersAndAddsHostFromTheAuthority() throws {
        let head = try #require(HTTP2DownstreamStreamHandler.requestHead(Self.block([
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
        let open = try #require(HTTP2DownstreamStreamHandler.requestHead(Self.block(base), endStream: false))
        #expect(open.headers["transfer-encoding"] == ["chunked"])
        let ended = try #require(HTTP2DownstreamStreamHandler.requestHead(Self.block(base), endStream: true))
        #expect(ended.headers["content-length"] == ["0"])
        let sized = try #require(HTTP2DownstreamStreamHandler.requestHead(Self.block(base + [("content-length", "5")]), endStream: false))
        #expect(sized.headers["content-length"] == ["5"])
        #expect(sized.headers["transfer-encoding"].isEmpty)
        let host = try #require(HTTP2DownstreamStreamHandler.requestHead(Self.block(base + [("host", "b")]), endStream: true))
        #expect(host.headers["host"] == ["b"])
    }

    @Test func requestHeadNeedsEveryRequestPseudoHeader() {
        let all = [(":method", "GET"), (":scheme", "http"), (":authority", "a"), (":path", "/")]
        for missing in all.indices {
            var pairs = all
            pairs.remove(at: missing)
            #expect(HTTP2DownstreamStreamHandler.requestHead(Self.block(pairs), endStream: true) == nil, "without \(all[missing].0)")
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
        let block = HTTP2DownstreamStreamHandler.headerBlock(headers, status: 200)
        #expect(block.map { "\($0.name): \($0.value)" } == [":status: 200", "content-type: text/plain", "x-kept: yes"])
        let trailers = HTTP2DownstreamStreamHandler.headerBlock(["Grpc-Status": "0"], status: nil)
        #expect(trailers.map { "\($0.name): \($0.value)" } == ["grpc-status: 0"])
    }
}
