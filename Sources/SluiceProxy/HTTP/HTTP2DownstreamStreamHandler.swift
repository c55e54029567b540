import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// One HTTP/2 stream of a downstream connection (its child channel): request frames become an
/// `HTTPStream`, and its response goes out as frames. A response's head and last body part are
/// held until the end of the event-loop turn, so a response that ends within it goes out with
/// END_STREAM on its last frame instead of an extra empty DATA frame.
final class HTTP2DownstreamStreamHandler: ChannelDuplexHandler, DownstreamStreamHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private let manager: CompiledHTTPConnectionManager
    private let connection: HTTPDownstreamConnection
    private(set) var context: ChannelHandlerContext?
    var stream: HTTPStream?
    private var receivedHead = false
    var pendingRead = false
    private var heldHead: HPACKHeaders?
    private var heldBody: ByteBuffer?
    private var flushScheduled = false

    init(manager: CompiledHTTPConnectionManager, connection: HTTPDownstreamConnection) {
        self.manager = manager
        self.connection = connection
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .headers(let headers) where !receivedHead:
            receivedHead = true
            guard let head = Self.requestHead(headers.headers, endStream: headers.endStream) else {
                context.close(promise: nil)
                return
            }
            connection.requests += 1
            let stream = HTTPStream(head: head, manager: manager, connection: connection, downstream: self, eventLoop: context.eventLoop)
            self.stream = stream
            stream.start()
            if headers.endStream { self.stream?.receivedEnd(nil) }
        case .headers(let trailers):
            stream?.receivedEnd(HTTPHeaders(trailers.headers.filter { !$0.name.hasPrefix(":") }.map { ($0.name, $0.value) }))
        case .data(let data):
            guard case .byteBuffer(let body) = data.data else { return }
            if body.readableBytes > 0 { stream?.receivedBody(body) }
            if data.endStream { stream?.receivedEnd(nil) }
        default:
            break
        }
    }

    /// The request head as NIO's HTTP/2-to-HTTP/1 codec builds it: `host` from `:authority`
    /// unless present, and the body's framing for methods that may carry one; nil without
    /// `:method`, `:path`, `:scheme` or `:authority`.
    static func requestHead(_ block: HPACKHeaders, endStream: Bool) -> HTTPRequestHead? {
        var method: String?
        var path: String?
        var scheme: String?
        var authority: String?
        var regular: [(String, String)] = []
        regular.reserveCapacity(block.count)
        var hasHost = false
        var hasContentLength = false
        for (name, value, _) in block {
            if name.first == ":" {
                switch name {
                case ":method": method = value
                case ":path": path = value
                case ":scheme": scheme = value
                case ":authority": authority = value
                default: break
                }
                continue
            }
            if name == "host" { hasHost = true }
            if name == "content-length" { hasContentLength = true }
            regular.append((name, value))
        }
        guard let method, let path, scheme != nil, let authority else { return nil }
        var leading: [(String, String)] = []
        if !hasHost { leading.append(("host", authority)) }
        let httpMethod = HTTPMethod(rawValue: method)
        switch httpMethod {
        case .GET, .HEAD, .DELETE, .CONNECT, .TRACE:
            break
        default:
            if !hasContentLength { leading.append(endStream ? ("content-length", "0") : ("transfer-encoding", "chunked")) }
        }
        return HTTPRequestHead(
            version: HTTPVersion(major: 2, minor: 0), method: httpMethod, uri: path, headers: HTTPHeaders(leading + regular))
    }

    func read(context: ChannelHandlerContext) {
        if upstreamHoldsReading {
            pendingRead = true
            return
        }
        context.read()
    }



    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    // MARK: DownstreamResponseWriter

    func writeResponseHead(_ head: HTTPResponseHead) {
        guard let context else { return }
        let block = Self.headerBlock(head.headers, status: head.status.code)
        if head.status.code < 200 {
            context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: block))), promise: nil)
            return
        }
        heldHead = block
        scheduleFlush(context)
    }

    func writeResponseBody(_ body: ByteBuffer) {
        guard let context else { return }
        writeHeld(context: context)
        heldBody = body
        scheduleFlush(context)
    }

    func writeResponseEnd(_ trailers: HTTPHeaders?) {
        guard let context else { return }
        // Cleared first: the frame with END_STREAM closes the stream channel at once, and that
        // close must not count as the client going away.
        stream = nil
        if let trailers, !trailers.isEmpty {
            writeHeld(context: context)
            context.write(wrapOutboundOut(.headers(.init(headers: Self.headerBlock(trailers, status: nil), endStream: true))), promise: nil)
        } else if let body = heldBody {
            heldBody = nil
            if let head = heldHead {
                heldHead = nil
                context.write(wrapOutboundOut(.headers(.init(headers: head))), promise: nil)
            }
            context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(body), endStream: true))), promise: nil)
        } else if let head = heldHead {
            heldHead = nil
            context.write(wrapOutboundOut(.headers(.init(headers: head, endStream: true))), promise: nil)
        } else {
            context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))), promise: nil)
        }
        context.flush()
        if pendingRead {
            pendingRead = false
            context.read()
        }
    }

    private func writeHeld(context: ChannelHandlerContext) {
        if let head = heldHead {
            heldHead = nil
            context.write(wrapOutboundOut(.headers(.init(headers: head))), promise: nil)
        }
        if let body = heldBody {
            heldBody = nil
            context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(body)))), promise: nil)
        }
    }

    private func scheduleFlush(_ context: ChannelHandlerContext) {
        guard !flushScheduled else { return }
        flushScheduled = true
        context.eventLoop.assumeIsolated().execute {
            self.flushScheduled = false
            guard self.heldHead != nil || self.heldBody != nil else { return }
            self.writeHeld(context: context)
            context.flush()
        }
    }

    /// HTTP/2 header block of a response head (`status`) or trailers (nil): lowercase names,
    /// without the connection-specific fields HTTP/2 forbids.
    static func headerBlock(_ headers: HTTPHeaders, status: UInt?) -> HPACKHeaders {
        var block = HPACKHeaders()
        block.reserveCapacity(headers.count + 1)
        if let status { block.add(name: ":status", value: String(status)) }
        let named = headers.contains(name: "connection") ? headers[canonicalForm: "connection"].map { $0.lowercased() } : []
        for (name, value) in headers {
            let lower = name.utf8.contains(where: { $0 >= 0x41 && $0 <= 0x5A }) ? name.lowercased() : name
            switch lower {
            case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade": continue
            default: if !named.isEmpty, named.contains(lower) { continue }
            }
            block.add(name: lower, value: value)
        }
        return block
    }

    func resetStream() {
        stream = nil
        heldHead = nil
        heldBody = nil
        context?.close(promise: nil)
    }



    func becomeTunnel(_ tunnel: UpgradeTunnelHandler) -> Bool { false }
}
