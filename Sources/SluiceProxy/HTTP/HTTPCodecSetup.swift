import NIOCore
import NIOHTTP1
import NIOHTTP2
import SluiceModel

/// Installs the downstream HTTP codec on an accepted connection: HTTP/1.1, HTTP/2 with prior
/// knowledge (h2c), or, for `codec_type: AUTO`, whichever the first bytes show.
enum HTTPCodecSetup {
    static let http2Preface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    static func install(on channel: any Channel, manager: CompiledHTTPConnectionManager, connection: @escaping (Bool) -> HTTPDownstreamConnection) throws {
        try channel.syncOptions?.setOption(.autoRead, value: true)
        switch manager.config.codecType {
        case .http1: try installHTTP1(on: channel, manager: manager, connection: connection(false))
        case .http2: try installHTTP2(on: channel, manager: manager, connection: connection(true))
        case .auto:
            try channel.pipeline.syncOperations.addHandler(HTTPProtocolSniffer(manager: manager, connection: connection))
        }
    }

    static func installHTTP1(on channel: any Channel, manager: CompiledHTTPConnectionManager, connection: HTTPDownstreamConnection) throws {
        let stats = manager.stats
        stats.downstreamConnectionsTotal.increment()
        stats.downstreamConnectionsActive.increment()
        stats.downstreamConnectionsHTTP1Total.increment()
        stats.downstreamConnectionsHTTP1Active.increment()
        channel.closeFuture.whenComplete { _ in
            stats.downstreamConnectionsActive.decrement()
            stats.downstreamConnectionsHTTP1Active.decrement()
        }
        let sync = channel.pipeline.syncOperations
        // Response headers come from a parser (upstream) or from the proxy itself; validating
        // them again on the way out costs a pass over every header. Pipelined requests wait in
        // the downstream handler, which keeps reading (NIO's pipelining handler would stop and
        // restart reading around every request, two epoll changes each); it answers parser
        // errors too, after the requests before them.
        try sync.addHandler(FlushCoalescingHandler(), position: .first)
        try sync.configureHTTPServerPipeline(
            withPipeliningAssistance: false, withServerUpgrade: nil, withErrorHandling: false,
            withOutboundHeaderValidation: false)
        try sync.addHandler(HTTPDownstreamHandler(manager: manager, connection: connection))
    }

    static func installHTTP2(on channel: any Channel, manager: CompiledHTTPConnectionManager, connection: HTTPDownstreamConnection) throws {
        let stats = manager.stats
        stats.downstreamConnectionsTotal.increment()
        stats.downstreamConnectionsActive.increment()
        stats.downstreamConnectionsHTTP2Total.increment()
        stats.downstreamConnectionsHTTP2Active.increment()
        channel.closeFuture.whenComplete { _ in
            stats.downstreamConnectionsActive.decrement()
            stats.downstreamConnectionsHTTP2Active.decrement()
        }
        let settings = manager.config.http2
        let streamWindow = min(settings.initialStreamWindowSize, (1 << 31) - 1)
        var connectionConfiguration = NIOHTTP2Handler.ConnectionConfiguration()
        // Request blocks are checked where they become request heads (HTTP2HeaderMapping),
        // in the same pass; the proxy's own response blocks need no checking.
        connectionConfiguration.headerBlockValidation = .disabled
        connectionConfiguration.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: min(settings.maxConcurrentStreams, (1 << 31) - 1)),
            HTTP2Setting(parameter: .initialWindowSize, value: streamWindow),
            HTTP2Setting(parameter: .maxHeaderListSize, value: manager.config.maxRequestHeadersKB * 1024),
        ]
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(FlushCoalescingHandler())
        try sync.addHandler(NIOHTTP2Handler(mode: .server, connectionConfiguration: connectionConfiguration))
        try sync.addHandler(HTTP2DownstreamConnectionHandler(
            manager: manager, connection: connection,
            connectionWindowTarget: connectionConfiguration.targetWindowSize, streamWindowTarget: streamWindow))
    }
}

/// Tells HTTP/1 from HTTP/2 by the connection preface, then installs that codec and replays
/// the bytes it held.
final class HTTPProtocolSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let manager: CompiledHTTPConnectionManager
    private let connection: (Bool) -> HTTPDownstreamConnection
    private var buffered: ByteBuffer?

    init(manager: CompiledHTTPConnectionManager, connection: @escaping (Bool) -> HTTPDownstreamConnection) {
        self.manager = manager
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if buffered == nil {
            buffered = incoming
        } else {
            buffered!.writeBuffer(&incoming)
        }
        guard let bytes = buffered else { return }
        let prefix = bytes.readableBytesView.prefix(HTTPCodecSetup.http2Preface.count)
        let isHTTP2: Bool
        if prefix.elementsEqual(HTTPCodecSetup.http2Preface.prefix(prefix.count)) {
            guard prefix.count == HTTPCodecSetup.http2Preface.count else { return }
            isHTTP2 = true
        } else {
            isHTTP2 = false
        }
        buffered = nil
        do {
            if isHTTP2 {
                try HTTPCodecSetup.installHTTP2(on: context.channel, manager: manager, connection: connection(true))
            } else {
                try HTTPCodecSetup.installHTTP1(on: context.channel, manager: manager, connection: connection(false))
            }
            // Replayed before leaving the pipeline: a removed context forwards nothing.
            context.fireChannelRead(wrapInboundOut(bytes))
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        } catch {
            context.close(promise: nil)
        }
    }
}

/// Fired on every HTTP connection when the proxy starts draining.
struct HTTPDrainEvent: Sendable {}
