import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// One stream of a downstream HTTP/2 connection: its request frames feed an `HTTPStream`, and
/// the response goes out as frames. A response's head and last body part wait for the end of
/// the event-loop turn, so a response that ends within it carries END_STREAM on its last frame
/// instead of an extra empty DATA frame.
final class HTTP2DownstreamStream: DownstreamResponseWriter {
    /// Response bytes queued but not yet written (beyond the peer's window or the socket) at
    /// which the upstream stops being read, and below which it is read again; NIO's defaults
    /// for a stream channel.
    static let highWatermark = 8196
    static let lowWatermark = 4092

    private enum RequestPart {
        case body(ByteBuffer, end: Bool)
        case trailers(HTTPHeaders)
    }

    let id: HTTP2StreamID
    var window: HTTP2InboundWindow
    private let context: ChannelHandlerContext
    private weak var connection: HTTP2DownstreamConnectionHandler?
    private var stream: HTTPStream?
    /// Request parts waiting while the upstream cannot take more.
    private var heldRequest: [RequestPart] = []
    private var heldHead: HPACKHeaders?
    private var heldBody: ByteBuffer?
    private var awaitingTurnEnd = false
    private var queuedBytes = 0
    private var belowWatermark = true
    private var connectionWritable: Bool

    init(id: HTTP2StreamID, context: ChannelHandlerContext, connection: HTTP2DownstreamConnectionHandler, window: HTTP2InboundWindow) {
        self.id = id
        self.context = context
        self.connection = connection
        self.window = window
        connectionWritable = connection.isWritable
    }

    func start(_ stream: HTTPStream, endStream: Bool) {
        self.stream = stream
        stream.start()
        if endStream { self.stream?.receivedEnd(nil) }
    }

    // MARK: Request

    func received(_ data: HTTP2Frame.FramePayload.Data) {
        guard case .byteBuffer(let body) = data.data else { return }
        receive(.body(body, end: data.endStream))
    }

    func receivedTrailers(_ block: HPACKHeaders) {
        guard let trailers = HTTP2HeaderMapping.requestTrailers(block) else {
            let stream = self.stream
            reset(.protocolError)
            stream?.downstreamReset()
            return
        }
        receive(.trailers(trailers))
    }

    private func receive(_ part: RequestPart) {
        guard heldRequest.isEmpty, !upstreamHoldsReading else {
            if case .body(let body, _) = part { window.hold(body.readableBytes) }
            heldRequest.append(part)
            return
        }
        deliver(part)
    }

    private func deliver(_ part: RequestPart) {
        switch part {
        case .body(let body, let end):
            if body.readableBytes > 0 { stream?.receivedBody(body) }
            if end { stream?.receivedEnd(nil) }
        case .trailers(let trailers):
            stream?.receivedEnd(trailers)
        }
    }

    private var upstreamHoldsReading: Bool {
        guard let stream else { return false }
        return !stream.finished && !stream.upstreamAcceptsBody
    }

    func resumeRequestReading() {
        var released = 0
        while !heldRequest.isEmpty, !upstreamHoldsReading {
            let part = heldRequest.removeFirst()
            if case .body(let body, _) = part { released += body.readableBytes }
            deliver(part)
        }
        if released > 0 { connection?.sendWindowUpdate(id, window.release(released)) }
    }

    /// Request parts nobody will read any more: their bytes go back to the peer's window.
    private func dropHeldRequest() {
        guard !heldRequest.isEmpty else { return }
        var dropped = 0
        for case .body(let body, _) in heldRequest { dropped += body.readableBytes }
        heldRequest.removeAll()
        connection?.sendWindowUpdate(id, window.release(dropped))
    }

    /// The stream closed (reset by the client, or the connection went away).
    func closed() {
        dropHeld()
        let stream = self.stream
        self.stream = nil
        stream?.downstreamReset()
    }

    /// Whatever waits in either direction, for a stream that ended abruptly.
    private func dropHeld() {
        heldRequest.removeAll()
        heldHead = nil
        heldBody = nil
    }

    // MARK: DownstreamResponseWriter

    func writeResponseHead(_ head: HTTPResponseHead) {
        let block = HTTP2HeaderMapping.headerBlock(head.headers, status: head.status.code)
        if head.status.code < 200 {
            context.writeAndFlush(frame(.headers(.init(headers: block))), promise: nil)
            return
        }
        heldHead = block
        holdUntilTurnEnd()
    }

    func writeResponseBody(_ body: ByteBuffer) {
        writeHeld()
        heldBody = body
        holdUntilTurnEnd()
    }

    func writeResponseEnd(_ trailers: HTTPHeaders?) {
        stream = nil
        // What is held goes out first, except the part that can carry END_STREAM itself.
        let last: HTTP2Frame.FramePayload
        if let trailers, !trailers.isEmpty {
            writeHeld()
            last = .headers(.init(headers: HTTP2HeaderMapping.headerBlock(trailers, status: nil), endStream: true))
        } else if let body = heldBody {
            heldBody = nil
            writeHeld()
            last = .data(.init(data: .byteBuffer(body), endStream: true))
        } else if let head = heldHead {
            heldHead = nil
            last = .headers(.init(headers: head, endStream: true))
        } else {
            last = .data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))
        }
        context.writeAndFlush(frame(last), promise: nil)
        dropHeldRequest()
    }

    private func holdUntilTurnEnd() {
        guard !awaitingTurnEnd else { return }
        awaitingTurnEnd = true
        connection?.holdUntilTurnEnd(self)
    }

    /// The event-loop turn ended: what is still held goes out (the connection flushes).
    func turnEnded() {
        awaitingTurnEnd = false
        writeHeld()
    }

    /// Writes the response parts held so far, without flushing.
    private func writeHeld() {
        if let head = heldHead {
            heldHead = nil
            context.write(frame(.headers(.init(headers: head))), promise: nil)
        }
        if let body = heldBody {
            heldBody = nil
            writeBody(body)
        }
    }

    /// A body part that does not end the stream: counted until NIO wrote it, for writability.
    private func writeBody(_ body: ByteBuffer) {
        let size = body.readableBytes
        queuedBytes += size
        let promise = context.eventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolated().whenComplete { [weak self] _ in self?.written(size) }
        context.write(frame(.data(.init(data: .byteBuffer(body)))), promise: promise)
        if belowWatermark, queuedBytes > Self.highWatermark { writabilityChanges { $0.belowWatermark = false } }
    }

    private func written(_ size: Int) {
        queuedBytes -= size
        if !belowWatermark, queuedBytes < Self.lowWatermark { writabilityChanges { $0.belowWatermark = true } }
    }

    func connectionWritabilityChanged(_ writable: Bool) {
        writabilityChanges { $0.connectionWritable = writable }
    }

    private func writabilityChanges(_ change: (HTTP2DownstreamStream) -> Void) {
        let before = downstreamIsWritable
        change(self)
        let after = downstreamIsWritable
        if before != after { stream?.downstreamWritabilityChanged(after) }
    }

    var downstreamIsWritable: Bool { belowWatermark && connectionWritable }

    func resetStream() {
        reset(.cancel)
    }

    private func reset(_ code: HTTP2ErrorCode) {
        stream = nil
        dropHeld()
        connection?.forget(id)
        context.writeAndFlush(frame(.rstStream(code)), promise: nil)
    }

    func becomeTunnel(_ tunnel: UpgradeTunnelHandler) -> Bool { false }

    private func frame(_ payload: HTTP2Frame.FramePayload) -> NIOAny {
        NIOAny(HTTP2Frame(streamID: id, payload: payload))
    }
}
