import NIOCore
import NIOHTTP1

/// Relays raw bytes between a downstream and an upstream connection after an HTTP/1.1 upgrade
/// (WebSocket) was accepted: both sides stop speaking HTTP and the proxy passes bytes through,
/// reading a side only while the other can take more.
final class UpgradeTunnelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var context: ChannelHandlerContext?
    weak var peer: UpgradeTunnelHandler?
    private var pendingRead = false

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    /// Joins two handlers on the same event loop.
    static func join(_ a: UpgradeTunnelHandler, _ b: UpgradeTunnelHandler) {
        a.peer = b
        b.peer = a
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        peer?.context?.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        peer?.context?.flush()
    }

    func read(context: ChannelHandlerContext) {
        if let peer, let peerContext = peer.context, !peerContext.channel.isWritable {
            pendingRead = true
            return
        }
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { peer?.resumeReading() }
        context.fireChannelWritabilityChanged()
    }

    private func resumeReading() {
        guard pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            peer?.context?.close(mode: .output, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let peerContext = peer?.context {
            peerContext.writeAndFlush(NIOAny(ByteBuffer())).assumeIsolated().whenComplete { _ in
                peerContext.close(promise: nil)
            }
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

extension ChannelPipeline.SynchronousOperations {
    /// Removes every handler of type `type`, if present.
    func removeIfPresent<Handler: RemovableChannelHandler>(_ type: Handler.Type) {
        if let handler = try? self.handler(type: type) { removeHandler(handler, promise: nil) }
    }
}
