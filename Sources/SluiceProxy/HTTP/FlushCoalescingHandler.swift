import NIOCore

/// Sits at the socket end of an HTTP/2 connection and turns the flushes of one event-loop turn
/// into one: every stream flushes its own writes, and without this each would be a system call.
final class FlushCoalescingHandler: ChannelOutboundHandler {
    typealias OutboundIn = NIOAny
    private var flushScheduled = false

    func flush(context: ChannelHandlerContext) {
        guard !flushScheduled else { return }
        flushScheduled = true
        context.eventLoop.assumeIsolated().execute {
            self.flushScheduled = false
            context.flush()
        }
    }
}
