import Logging
import NIOCore
import NIOHTTP1

/// Serves admin requests on one connection. Requests are answered in order (NIO's pipelining
/// handler sits in front); bodies are ignored, since no Sluice endpoint reads one.
final class AdminHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let router: AdminRouter
    private let peerIsPrivileged: Bool
    private var head: HTTPRequestHead?

    init(router: AdminRouter, peerIsPrivileged: Bool) {
        self.router = router
        self.peerIsPrivileged = peerIsPrivileged
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break
        case .end:
            guard let head else { return }
            self.head = nil
            let request = AdminRequest(method: head.method, uri: head.uri, peerIsPrivileged: peerIsPrivileged)
            respond(router.respond(to: request), to: head, context: context)
        }
    }

    private func respond(_ response: AdminResponse, to request: HTTPRequestHead, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(response.body.count))
        headers.add(name: "X-Content-Type-Options", value: "nosniff")
        if !request.isKeepAlive { headers.add(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: request.version, status: response.status, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if request.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))), promise: nil)
        }
        let keepAlive = request.isKeepAlive
        let afterSend = response.afterSend
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            afterSend?()
            if !keepAlive { channel.close(promise: nil) }
        }
    }

    /// Idle connections are closed so a forgotten client cannot hold descriptors forever.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Malformed HTTP was already answered with 400 by NIO's protocol error handler.
        context.close(promise: nil)
    }
}
