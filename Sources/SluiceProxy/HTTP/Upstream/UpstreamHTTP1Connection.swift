import NIOCore
import NIOHTTP1

/// One HTTP/1.1 upstream connection: carries one exchange at a time and goes back to its pool
/// when both the request and a reusable response are complete.
final class UpstreamHTTP1Connection: UpstreamExchangeHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = Never
    typealias OutboundOut = HTTPClientRequestPart

    private(set) var context: ChannelHandlerContext?
    private(set) weak var receiver: (any UpstreamResponseReceiver)?
    private var requestComplete = false
    private var responseComplete = false
    private var reusable = true
    var pendingRead = false
    private var closed = false
    /// A 1xx response other than 101 is in progress: its end is not the exchange's.
    private var informational = false
    /// A 101 response: at its end the connection becomes a tunnel instead of being reused.
    private var switchingProtocols = false
    /// Called when the connection can carry another exchange, or closed.
    var onIdle: ((UpstreamHTTP1Connection) -> Void)?
    var onClose: ((UpstreamHTTP1Connection) -> Void)?
    private(set) var exchanges = 0
    /// When the connection last went back to its pool, and whether the pool's idle check is armed.
    var idleSince = NIODeadline.now()
    var idleCheckPending = false

    /// `max_requests_per_connection` of the cluster's protocol options; nil is unlimited.
    private let maxExchanges: Int?

    init(maxExchanges: Int? = nil) {
        self.maxExchanges = maxExchanges
    }

    var isIdle: Bool { receiver == nil && !closed }
    var isOpen: Bool { !closed }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        context.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
    }

    /// Starts an exchange on this idle connection.
    func begin(_ receiver: any UpstreamResponseReceiver) {
        self.receiver = receiver
        requestComplete = false
        responseComplete = false
        exchanges += 1
    }

    // MARK: UpstreamRequestSink

    func writeHead(_ head: HTTPRequestHead) {
        var head = head
        if head.headers.contains(name: "connection"),
           head.headers[canonicalForm: "connection"].contains(where: { $0.lowercased() == "close" }) {
            reusable = false
        }
        // Set only when different: the setter copies the head's shared storage.
        if head.version != .http1_1 { head.version = .http1_1 }
        context?.write(wrapOutboundOut(.head(head)), promise: nil)
    }


    func writeEnd(_ trailers: HTTPHeaders?) {
        requestComplete = true
        context?.writeAndFlush(wrapOutboundOut(.end(trailers)), promise: nil)
        finishIfDone()
    }

    /// After a `101 Switching Protocols`: stops speaking HTTP on this connection (never reused)
    /// and joins it to `tunnel`; bytes that followed the response head are passed on.
    func becomeTunnel(_ tunnel: UpgradeTunnelHandler) -> Bool {
        guard let context else { return false }
        receiver = nil
        reusable = false
        closed = true
        let sync = context.pipeline.syncOperations
        try? sync.addHandler(tunnel, position: .after(self))
        sync.removeIfPresent(HTTPRequestEncoder.self)
        sync.removeIfPresent(ByteToMessageHandler<HTTPResponseDecoder>.self)
        sync.removeHandler(context: context, promise: nil)
        return true
    }

    func reset() {
        receiver = nil
        reusable = false
        context?.close(promise: nil)
    }

    // MARK: Channel events

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            if head.status.code < 200, head.status != .switchingProtocols {
                informational = true
                return
            }
            if !head.isKeepAlive { reusable = false }
            switchingProtocols = head.status == .switchingProtocols
            receiver?.upstreamResponseHead(head)
        case .body(let body):
            receiver?.upstreamResponseBody(body)
        case .end(let trailers):
            if informational {
                informational = false
                return
            }
            if switchingProtocols {
                // The receiver turns this connection into a tunnel (or resets it).
                receiver?.upstreamResponseEnd(trailers)
                return
            }
            responseComplete = true
            let current = receiver
            // A response that ends before the request finished: Envoy stops sending the rest
            // and cannot reuse the connection.
            if !requestComplete { reusable = false }
            finishIfDone()
            current?.upstreamResponseEnd(trailers)
        }
    }



    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The upstream closed its side: HTTP/1.1 has no use for the other half.
        if case ChannelEvent.inputClosed = event { context.close(promise: nil) }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        let current = receiver
        receiver = nil
        if !responseComplete || current != nil { current?.upstreamFailed(.reset) }
        onClose?(self)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError {
            let current = receiver
            receiver = nil
            current?.upstreamFailed(.protocolError)
        }
        context.close(promise: nil)
    }

    private func finishIfDone() {
        guard requestComplete, responseComplete else { return }
        receiver = nil
        if let maxExchanges, exchanges >= maxExchanges { reusable = false }
        if reusable, !closed {
            onIdle?(self)
        } else {
            context?.close(promise: nil)
        }
    }
}
