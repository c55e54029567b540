import NIOCore

/// Sits at the end of each side's pipeline and reports to the session, which forwards the
/// bytes to the other side. Reading is manual (`autoRead` is off) so a side is only read while
/// the other side can take more: this is the per-connection backpressure.
final class RelayHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let session: TCPProxySession
    private let side: TCPProxyStateMachine.Side

    init(session: TCPProxySession, side: TCPProxyStateMachine.Side) {
        self.session = session
        self.side = side
    }

    func handlerAdded(context: ChannelHandlerContext) {
        session.attach(context, side: side)
        if context.channel.isActive { session.channelActive(side) }
    }

    func channelActive(context: ChannelHandlerContext) {
        session.channelActive(side)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        session.read(unwrapInboundIn(data), from: side, context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        session.readComplete(from: side, context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        session.writabilityChanged(side, writable: context.channel.isWritable, context: context)
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            session.inputClosed(side, context: context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        session.channelInactive(side, context: context)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Resets and write failures end this side; its channelInactive then winds down the other.
        context.close(promise: nil)
    }
}
