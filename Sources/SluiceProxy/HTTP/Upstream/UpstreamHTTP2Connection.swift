import NIOCore
import NIOHTTP1
import NIOHTTP2
import SluiceModel

/// One HTTP/2 upstream connection: every exchange is a stream of it. Stops taking new streams
/// when the upstream says GOAWAY or the connection closes.
final class UpstreamHTTP2Connection {
    let channel: any Channel
    private let multiplexer: NIOHTTP2Handler.StreamMultiplexer
    private(set) var draining = false
    private(set) var activeStreams = 0
    private var closesWhenIdle = false
    var onUnusable: ((UpstreamHTTP2Connection) -> Void)?

    init(channel: any Channel, multiplexer: NIOHTTP2Handler.StreamMultiplexer) {
        self.channel = channel
        self.multiplexer = multiplexer
    }

    var isUsable: Bool { !draining && channel.isActive }

    /// Configures `channel` for HTTP/2 with prior knowledge and returns the connection.
    static func configure(
        _ channel: any Channel, settings: HTTP2ProtocolOptions
    ) throws -> UpstreamHTTP2Connection {
        try channel.syncOptions?.setOption(.autoRead, value: true)
        try channel.pipeline.syncOperations.addHandler(FlushCoalescingHandler())
        var connectionConfiguration = NIOHTTP2Handler.ConnectionConfiguration()
        connectionConfiguration.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: min(settings.maxConcurrentStreams, 1 << 30)),
            HTTP2Setting(parameter: .initialWindowSize, value: min(settings.initialStreamWindowSize, (1 << 31) - 1)),
        ]
        var streamConfiguration = NIOHTTP2Handler.StreamConfiguration()
        streamConfiguration.targetWindowSize = min(settings.initialStreamWindowSize, (1 << 31) - 1)
        let multiplexer = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
            mode: .client, connectionConfiguration: connectionConfiguration, streamConfiguration: streamConfiguration
        ) { stream in
            // Servers do not open streams toward the proxy (no push).
            stream.close()
        }
        let connection = UpstreamHTTP2Connection(channel: channel, multiplexer: multiplexer)
        try channel.pipeline.syncOperations.addHandler(GoAwayWatcher(connection: connection))
        channel.closeFuture.assumeIsolated().whenComplete { _ in connection.markUnusable() }
        return connection
    }

    func markUnusable() {
        guard !draining else { return }
        draining = true
        onUnusable?(self)
    }

    /// Takes no new streams and closes once the open ones ended (the pool's host left its cluster).
    func closeWhenIdle() {
        markUnusable()
        closesWhenIdle = true
        if activeStreams == 0 { channel.close(promise: nil) }
    }

    private func streamEnded() {
        activeStreams -= 1
        if closesWhenIdle, activeStreams == 0 { channel.close(promise: nil) }
    }

    /// Opens a stream for one exchange.
    func openStream(for receiver: any UpstreamResponseReceiver) -> EventLoopFuture<any UpstreamRequestSink> {
        activeStreams += 1
        let promise = channel.eventLoop.makePromise(of: (any Channel).self)
        let stream = UpstreamHTTP2Stream(receiver: receiver)
        let loopBoundStream = NIOLoopBound(stream, eventLoop: channel.eventLoop)
        multiplexer.createStreamChannel(promise: promise) { streamChannel in
            streamChannel.eventLoop.makeCompletedFuture {
                try streamChannel.pipeline.syncOperations.addHandlers([
                    HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: .http), loopBoundStream.value,
                ])
            }
        }
        return promise.futureResult.assumeIsolated().map { streamChannel -> any UpstreamRequestSink in
            streamChannel.closeFuture.assumeIsolated().whenComplete { _ in self.streamEnded() }
            return loopBoundStream.value
        }.always { result in
            if case .failure = result { self.streamEnded() }
        }.nonisolated()
    }
}

/// Marks the connection draining when the upstream sends GOAWAY.
private final class GoAwayWatcher: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    private let connection: UpstreamHTTP2Connection

    init(connection: UpstreamHTTP2Connection) {
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .goAway = unwrapInboundIn(data).payload { connection.markUnusable() }
        context.fireChannelRead(data)
    }
}

/// One exchange over an HTTP/2 stream.
final class UpstreamHTTP2Stream: UpstreamExchangeHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = Never
    typealias OutboundOut = HTTPClientRequestPart

    private(set) var context: ChannelHandlerContext?
    private(set) weak var receiver: (any UpstreamResponseReceiver)?
    private var responseComplete = false
    var pendingRead = false

    init(receiver: any UpstreamResponseReceiver) {
        self.receiver = receiver
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func writeHead(_ head: HTTPRequestHead) {
        context?.write(wrapOutboundOut(.head(head)), promise: nil)
    }


    func writeEnd(_ trailers: HTTPHeaders?) {
        context?.writeAndFlush(wrapOutboundOut(.end(trailers)), promise: nil)
    }



    func reset() {
        receiver = nil
        context?.close(promise: nil)
    }

    func becomeTunnel(_ tunnel: UpgradeTunnelHandler) -> Bool { false }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            // Informational heads carry no end of their own on HTTP/2.
            if head.status.code < 200 { return }
            receiver?.upstreamResponseHead(head)
        case .body(let body):
            receiver?.upstreamResponseBody(body)
        case .end(let trailers):
            responseComplete = true
            let current = receiver
            receiver = nil
            current?.upstreamResponseEnd(trailers)
        }
    }



    func channelInactive(context: ChannelHandlerContext) {
        let current = receiver
        receiver = nil
        if !responseComplete { current?.upstreamFailed(.reset) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let current = receiver
        receiver = nil
        current?.upstreamFailed(error is NIOHTTP2Errors.StreamClosed ? .reset : .protocolError)
        context.close(promise: nil)
    }
}
