import NIOHTTP1
@testable import SluiceProxy
import Testing

/// Case-insensitive byte comparisons the request path uses for header names and tokens.
@Suite struct ASCIIMatchingTests {
    @Test func prefixesEqualityAndContainment() {
        #expect("X-Envoy-Retry-On".hasASCIICaseInsensitivePrefix("x-envoy-"))
        #expect(!"X-Envo".hasASCIICaseInsensitivePrefix("x-envoy-"))
        #expect("Keep-Alive".equalsASCIICaseInsensitive("keep-alive"))
        #expect(!"Keep-Alives".equalsASCIICaseInsensitive("keep-alive"))
        #expect("gzip, Chunked".containsASCIICaseInsensitive("chunked"))
        #expect("chunkechunked".containsASCIICaseInsensitive("chunked"))
        #expect(!"chunke".containsASCIICaseInsensitive("chunked"))
        #expect("".containsASCIICaseInsensitive(""))
        #expect("/a#b".containsASCII(UInt8(ascii: "#")))
    }

    @Test func headerValuesAreSearchedUnderTheirNameOnly() {
        let headers: HTTPHeaders = ["Transfer-Encoding": "gzip, CHUNKED", "x-other": "chunked"]
        #expect(headers.anyValue(of: "transfer-encoding", containsASCIICaseInsensitive: "chunked"))
        #expect(!headers.anyValue(of: "connection", containsASCIICaseInsensitive: "chunked"))
    }
}
