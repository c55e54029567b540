import Foundation
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix

/// A loopback HTTP/1.1 upstream for connection manager tests. It answers every request with
/// `x-upstream: <name>` and a body listing what it received (request line, headers, body
/// size); `/status/<code>` answers that status, `/delay/<ms>` answers late, `/reset` closes
/// without answering.
final class HTTPTestUpstream: @unchecked Sendable {
    let channel: any Channel
    let group: MultiThreadedEventLoopGroup
    let name: String

    /// - Parameter http2: speak HTTP/2 with prior knowledge instead of HTTP/1.1.
    init(name: String, http2: Bool = false) throws {
        self.name = name
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        channel = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if http2 {
                        _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                            mode: .server, connectionConfiguration: .init(), streamConfiguration: .init()
                        ) { stream in
                            stream.eventLoop.makeCompletedFuture {
                                try stream.pipeline.syncOperations.addHandlers([
                                    HTTP2FramePayloadToHTTP1ServerCodec(), Handler(name: name),
                                ])
                            }
                        }
                    } else {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        try channel.pipeline.syncOperations.addHandler(Handler(name: name))
                    }
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

    /// Sends `text` as it is, e.g. several pipelined requests in one write.
    func send(raw text: String) throws {
        try client.send(Array(text.utf8))
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

/// An HTTP/2 (prior knowledge) client: many concurrent requests as streams of one connection.
final class HTTP2TestClient: @unchecked Sendable {
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let channel: any Channel
    private let multiplexer: NIOHTTP2Handler.StreamMultiplexer

    init(port: Int) throws {
        let connected = try ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                        mode: .client, connectionConfiguration: .init(), streamConfiguration: .init()
                    ) { $0.close() }
                }
            }
            .connect(host: "127.0.0.1", port: port).wait()
        channel = connected
        multiplexer = try connected.eventLoop.submit {
            try connected.pipeline.syncOperations.handler(type: NIOHTTP2Handler.self).syncMultiplexer()
        }.wait()
    }

    func close() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }

    /// Sends one request as a new stream and waits for the whole response.
    func request(_ path: String, method: HTTPMethod = .GET, host: String = "example.com", headers: [(String, String)] = [],
                 body: [UInt8] = [], trailers: [(String, String)]? = nil) throws -> HTTPTestClient.Response {
        let done = channel.eventLoop.makePromise(of: HTTPTestClient.Response.self)
        let collector = ResponseCollector(done: done)
        let streamPromise = channel.eventLoop.makePromise(of: (any Channel).self)
        multiplexer.createStreamChannel(promise: streamPromise) { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandlers([HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: .http), collector])
            }
        }
        let stream = try streamPromise.futureResult.wait()
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
        head.headers.add(name: "host", value: host)
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        stream.write(HTTPClientRequestPart.head(head), promise: nil)
        if !body.isEmpty { stream.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil) }
        let trailerHeaders = trailers.map { HTTPHeaders($0) }
        stream.writeAndFlush(HTTPClientRequestPart.end(trailerHeaders), promise: nil)
        return try done.futureResult.wait()
    }

    private final class ResponseCollector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPClientResponsePart
        let done: EventLoopPromise<HTTPTestClient.Response>
        var response = HTTPTestClient.Response(status: 0, headers: [], body: "")
        var trailers: [(String, String)] = []

        init(done: EventLoopPromise<HTTPTestClient.Response>) { self.done = done }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                response.status = Int(head.status.code)
                response.headers = head.headers.map { ($0.name.lowercased(), $0.value) }
            case .body(let body):
                response.body += String(buffer: body)
            case .end(let trailers):
                response.headers += (trailers ?? [:]).map { ($0.name.lowercased(), $0.value) }
                done.succeed(response)
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            done.fail(TestError("stream closed before the response ended"))
        }
    }
}
