import NIOCore
import NIOHTTP1

/// Receives one upstream response on behalf of a downstream stream. Called on the event loop
/// both sides share.
protocol UpstreamResponseReceiver: AnyObject {
    func upstreamResponseHead(_ head: HTTPResponseHead)
    func upstreamResponseBody(_ body: ByteBuffer)
    func upstreamResponseEnd(_ trailers: HTTPHeaders?)
    /// The exchange ended without a complete response.
    func upstreamFailed(_ failure: UpstreamFailure)
    /// The request side can take more (or no more) body: drives downstream reading.
    func upstreamWritabilityChanged(_ writable: Bool)
    /// Whether the downstream can take more response body; the upstream holds reads otherwise.
    var downstreamWritable: Bool { get }
}

/// Where one exchange writes its request: an HTTP/1 connection lent by its pool, or an HTTP/2
/// stream.
protocol UpstreamRequestSink: AnyObject {
    func writeHead(_ head: HTTPRequestHead)
    func writeBody(_ body: ByteBuffer)
    func writeEnd(_ trailers: HTTPHeaders?)
    var isWritable: Bool { get }
    /// The downstream drained: read the response again.
    func resumeReading()
    /// Abandons the exchange (timeout, downstream gone); the connection or stream is not reused.
    func reset()
    /// Joins the connection to an upgrade tunnel; false where upgrades are not possible (HTTP/2).
    func becomeTunnel(_ tunnel: UpgradeTunnelHandler) -> Bool
}

/// An exchange's handler on its upstream channel (an HTTP/1 connection or an HTTP/2 stream):
/// response reads wait while the downstream cannot take more, and the request side's
/// writability drives downstream reading.
protocol UpstreamExchangeHandler: ChannelDuplexHandler, UpstreamRequestSink where OutboundOut == HTTPClientRequestPart {
    var context: ChannelHandlerContext? { get }
    var receiver: (any UpstreamResponseReceiver)? { get }
    /// A read held back while the downstream could not take more.
    var pendingRead: Bool { get set }
}

extension UpstreamExchangeHandler {
    func writeBody(_ body: ByteBuffer) {
        context?.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
    }

    var isWritable: Bool { context?.channel.isWritable ?? false }

    func resumeReading() {
        guard pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }

    func read(context: ChannelHandlerContext) {
        if let receiver, !receiver.downstreamWritable {
            pendingRead = true
            return
        }
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        receiver?.upstreamWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }
}
