// Helpers shared by the HTTP filter and access log tests (no tests of its own).
import NIOHTTP1
import SluiceModel
@testable import SluiceProxy

/// Plays back given random values, so percentage draws are known.
struct ScriptedRandom: RandomNumberGenerator {
    var values: [UInt64]
    private(set) var drawn = 0

    init(_ values: [UInt64]) { self.values = values }

    mutating func next() -> UInt64 {
        defer { drawn += 1 }
        return drawn < values.count ? values[drawn] : 0
    }
}

enum FilterTestRequest {
    static func make(
        method: String = "GET", path: String = "/", authority: String = "example.com",
        headers: [(String, String)] = [], remote: String = "10.0.0.1:40000", directRemote: String? = nil,
        local: String = "10.0.0.9:8080"
    ) -> HTTPRequestContext {
        HTTPRequestContext(
            method: method, path: path, authority: authority, headers: HTTPHeaders(headers),
            directRemote: SocketEndpoint(directRemote ?? remote)!, remote: SocketEndpoint(remote)!,
            local: SocketEndpoint(local)!)
    }
}
