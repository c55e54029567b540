import NIOCore

/// A downstream handler that serves streams (an HTTP/1 connection or an HTTP/2 stream channel):
/// request reading waits while the upstream cannot take more body, response writability is the
/// channel's, and a channel that goes away resets its stream.
protocol DownstreamStreamHandler: ChannelInboundHandler, DownstreamResponseWriter {
    var context: ChannelHandlerContext? { get }
    var stream: HTTPStream? { get set }
    /// A read held back while the upstream could not take more request body.
    var pendingRead: Bool { get set }
}

extension DownstreamStreamHandler {
    /// Whether the current stream's upstream cannot take more request body now.
    var upstreamHoldsReading: Bool {
        guard let stream else { return false }
        return !stream.finished && !stream.upstreamAcceptsBody
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        stream?.downstreamWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stream?.downstreamReset()
        stream = nil
        context.fireChannelInactive()
    }

    var downstreamIsWritable: Bool { context?.channel.isWritable ?? false }

    func resumeRequestReading() {
        guard pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }
}
