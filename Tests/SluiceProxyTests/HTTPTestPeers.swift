import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A loopback HTTP/1.1 upstream for connection manager tests. It answers every request with
/// `x-upstream: <name>` and a body listing what it received (request line, headers, body
/// size); `/status/<code>` answers that status, `/delay/<ms>` answers late, `/reset` closes
/// without answering.
final class HTTPTestUpstream: @unchecked Sendable {
    let channel: any Channel
    let group: MultiThreadedEventLoopGroup
    let name: String

    init(name: String) throws {
        self.name = name
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        channel = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(name: name))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    var port: Int { channel.localAddress!.port! }

    func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let name: String
        var head: HTTPRequestHead?
        var bodyBytes = 0

        init(name: String) { self.name = name }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                bodyBytes = 0
            case .body(let body):
                bodyBytes += body.readableBytes
            case .end:
                guard let head else { return }
                respond(context: context, to: head)
            }
        }

        private func respond(context: ChannelHandlerContext, to head: HTTPRequestHead) {
            var status = HTTPResponseStatus.ok
            let parts = head.uri.split(separator: "/")
            if parts.count >= 2, parts[0] == "status", let code = Int(parts[1].prefix { $0.isNumber }) {
                status = HTTPResponseStatus(statusCode: code)
            }
            if head.uri.hasPrefix("/reset") {
                context.close(promise: nil)
                return
            }
            var text = "\(head.method.rawValue) \(head.uri)\n"
            for (name, value) in head.headers { text += "\(name.lowercased()): \(value)\n" }
            text += "body-bytes: \(bodyBytes)\n"
            var headers = HTTPHeaders()
            headers.add(name: "x-upstream", value: name)
            headers.add(name: "content-length", value: String(text.utf8.count))
            let response = HTTPResponseHead(version: head.version, status: status, headers: headers)
            let send = {
                context.write(NIOAny(HTTPServerResponsePart.head(response)), promise: nil)
                context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
                context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)), promise: nil)
            }
            if parts.count >= 2, parts[0] == "delay", let ms = Int64(parts[1].prefix { $0.isNumber }) {
                context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(ms)) { send() }
            } else {
                send()
            }
        }
    }
}

/// A blocking HTTP/1.1 client over one keep-alive connection, reading responses framed by
/// `content-length` or chunked encoding.
final class HTTPTestClient {
    private let client: TestClient
    private var buffer: [UInt8] = []

    init(port: Int) throws {
        client = try TestClient(port: port)
    }

    struct Response {
        var status: Int
        var headers: [(String, String)]
        var body: String

        func header(_ name: String) -> String? { headers.first { $0.0 == name.lowercased() }?.1 }
    }

    func request(_ path: String, method: String = "GET", host: String = "example.com", headers: [(String, String)] = [],
                 body: [UInt8] = []) throws -> Response {
        var text = "\(method) \(path) HTTP/1.1\r\nhost: \(host)\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        if !body.isEmpty || method == "POST" { text += "content-length: \(body.count)\r\n" }
        text += "\r\n"
        try client.send(Array(text.utf8) + body)
        return try readResponse(head: method == "HEAD")
    }

    private func fill() throws {
        let chunk = try client.readSome(65536)
        if chunk.isEmpty { throw TestError("connection closed") }
        buffer += chunk
    }

    private func line() throws -> String {
        while true {
            if let index = buffer.indices.dropLast().first(where: { buffer[$0] == 13 && buffer[$0 + 1] == 10 }) {
                let line = String(decoding: buffer[..<index], as: UTF8.self)
                buffer.removeFirst(index + 2)
                return line
            }
            try fill()
        }
    }

    private func bytes(_ count: Int) throws -> [UInt8] {
        while buffer.count < count { try fill() }
        let result = Array(buffer[..<count])
        buffer.removeFirst(count)
        return result
    }

    func readResponse(head: Bool = false) throws -> Response {
        var status = 0
        var headers: [(String, String)] = []
        repeat {
            let statusLine = try line()
            status = Int(statusLine.split(separator: " ")[1]) ?? 0
            headers = []
            while true {
                let header = try line()
                if header.isEmpty { break }
                let colon = header.firstIndex(of: ":")!
                headers.append((header[..<colon].lowercased(), header[header.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
            }
        } while status < 200
        var body: [UInt8] = []
        if head || status == 204 || status == 304 {
        } else if let length = headers.first(where: { $0.0 == "content-length" }).flatMap({ Int($0.1) }) {
            body = try bytes(length)
        } else if headers.contains(where: { $0.0 == "transfer-encoding" }) {
            while true {
                let size = Int(try line(), radix: 16) ?? 0
                if size == 0 { _ = try line(); break }
                body += try bytes(size)
                _ = try line()
            }
        }
        return Response(status: status, headers: headers, body: String(decoding: body, as: UTF8.self))
    }
}
