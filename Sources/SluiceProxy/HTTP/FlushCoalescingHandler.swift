import NIOCore

/// Sits at the socket end of a connection and turns the flushes of one event-loop turn into one
/// system call: the responses that the upstream reads of one turn completed, the streams of an
/// HTTP/2 connection, and the upstream requests one downstream read produced (written one by
/// one between the parsing of the next, each would wake the upstream anew).
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
