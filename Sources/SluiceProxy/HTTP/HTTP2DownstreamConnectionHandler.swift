import NIOCore
import NIOHTTP2

/// Serves the streams of one downstream HTTP/2 connection on the connection's own pipeline.
/// NIO's HTTP/2 handler hands over frames, and each stream is an `HTTP2DownstreamStream`
/// rather than a child channel: a channel, a pipeline and a handler per request cost more than
/// the request's own work. What NIO's multiplexer would keep per stream, window updates and
/// writability, is kept here. When the proxy drains, the connection sends GOAWAY so that
/// clients open new streams elsewhere, and closes once the last stream ended (or after twice
/// the drain timeout).
final class HTTP2DownstreamConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    private let manager: CompiledHTTPConnectionManager
    private let connection: HTTPDownstreamConnection
    private let streamWindowTarget: Int
    private var connectionWindow: HTTP2InboundWindow
    private var streams: [HTTP2StreamID: HTTP2DownstreamStream] = [:]
    private var context: ChannelHandlerContext?
    /// Streams holding a response part until the end of the event-loop turn.
    private var holding: [HTTP2DownstreamStream] = []
    /// Streams NIO counts as open (including ones this side reset), for draining.
    private var openStreams = 0
    private var lastStreamID = HTTP2StreamID(0)
    private var draining = false

    init(manager: CompiledHTTPConnectionManager, connection: HTTPDownstreamConnection, connectionWindowTarget: Int, streamWindowTarget: Int) {
        self.manager = manager
        self.connection = connection
        self.streamWindowTarget = streamWindowTarget
        connectionWindow = HTTP2InboundWindow(target: connectionWindowTarget)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.payload {
        case .headers(let headers):
            if let stream = streams[frame.streamID] {
                stream.receivedTrailers(headers.headers)
            } else {
                open(frame.streamID, headers, context: context)
            }
        case .data(let data):
            streams[frame.streamID]?.received(data)
        default:
            break
        }
    }

    private func open(_ id: HTTP2StreamID, _ headers: HTTP2Frame.FramePayload.Headers, context: ChannelHandlerContext) {
        guard let head = HTTP2HeaderMapping.requestHead(headers.headers, endStream: headers.endStream) else {
            context.writeAndFlush(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .rstStream(.protocolError))), promise: nil)
            return
        }
        let stream = HTTP2DownstreamStream(
            id: id, context: context, connection: self, window: HTTP2InboundWindow(target: streamWindowTarget))
        // In the map first: a local reply may end (and close) the stream from inside `start`.
        streams[id] = stream
        connection.requests += 1
        stream.start(HTTPStream(head: head, manager: manager, connection: connection, downstream: stream, eventLoop: context.eventLoop), endStream: headers.endStream)
    }

    /// NIO's stream events end here (nothing after this handler needs them); others go on.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Most frequent first: window changes come with every DATA frame either way.
        if let window = event as? NIOHTTP2WindowUpdatedEvent {
            if let size = window.inboundWindowSize {
                if window.streamID == .rootStream {
                    sendWindowUpdate(.rootStream, connectionWindow.reported(size))
                } else if let stream = streams[window.streamID] {
                    sendWindowUpdate(window.streamID, stream.window.reported(size))
                }
            }
        } else if let created = event as? NIOHTTP2StreamCreatedEvent {
            openStreams += 1
            lastStreamID = max(lastStreamID, created.streamID)
        } else if let closed = event as? StreamClosedEvent {
            openStreams -= 1
            streams.removeValue(forKey: closed.streamID)?.closed()
            if draining, openStreams == 0 { finishDrainingUnlessStreamsArrive(context: context) }
        } else {
            if event is HTTPDrainEvent { startDraining(context: context) }
            context.fireUserInboundEventTriggered(event)
        }
    }

    private func startDraining(context: ChannelHandlerContext) {
        guard !draining else { return }
        draining = true
        let frame = HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: .maxID, errorCode: .noError, opaqueData: nil))
        context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
        if openStreams == 0 { finishDrainingUnlessStreamsArrive(context: context) }
        context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(manager.config.drainTimeout * 2)) {
            self.finishDraining(context: context)
        }
    }

    /// Streams the client opened before it saw GOAWAY still arrive within one round trip: the
    /// connection closes only if none did, also when the last stream just ended.
    private func finishDrainingUnlessStreamsArrive(context: ChannelHandlerContext) {
        context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(500)) {
            if self.openStreams == 0 { self.finishDraining(context: context) }
        }
    }

    private func finishDraining(context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        let frame = HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: lastStreamID, errorCode: .noError, opaqueData: nil))
        context.writeAndFlush(wrapOutboundOut(frame)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let writable = context.channel.isWritable
        for stream in streams.values { stream.connectionWritabilityChanged(writable) }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        let open = streams.values
        streams.removeAll()
        for stream in open { stream.closed() }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // NIO has already reset a stream that broke the protocol; any other error ends the
        // connection, after the GOAWAY NIO sent.
        if error is NIOHTTP2Errors.StreamError { return }
        context.close(promise: nil)
    }

    // MARK: For the streams

    var isWritable: Bool { context?.channel.isWritable ?? false }

    func sendWindowUpdate(_ id: HTTP2StreamID, _ increment: Int?) {
        guard let increment, let context else { return }
        context.writeAndFlush(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .windowUpdate(windowSizeIncrement: increment))), promise: nil)
    }

    /// The stream ended on this side by a reset: it no longer takes frames.
    func forget(_ id: HTTP2StreamID) {
        streams[id] = nil
    }

    /// `stream` holds a response part until the end of this event-loop turn; all such parts
    /// go out then, with one flush.
    func holdUntilTurnEnd(_ stream: HTTP2DownstreamStream) {
        holding.append(stream)
        guard holding.count == 1, let context else { return }
        context.eventLoop.assumeIsolated().execute {
            let holding = self.holding
            self.holding.removeAll(keepingCapacity: true)
            for stream in holding { stream.turnEnded() }
            context.flush()
        }
    }
}
