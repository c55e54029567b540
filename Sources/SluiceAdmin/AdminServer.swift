import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import SluiceModel
import SluiceProxy
import Synchronization

/// The admin HTTP server (Envoy-compatible paths) on its own single-thread event loop group,
/// so scraping and config dumps never run on the data-path loops.
public final class AdminServer: Sendable {
    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    /// The socket file we created, by path and inode identity.
    private let socketFile: SocketFile?
    private let logger: Logger
    /// Set by the first `shutdown`; NIO does not answer a second group shutdown.
    private let stopped = Atomic(false)
    /// Set once a new process owns the listening socket (hot upgrade): its file stays.
    private let released = Atomic(false)

    /// The listening socket's descriptor, for a hot upgrade to hand over.
    public let descriptor: CInt

    /// Where the server listens: `ip:port` with the real port, or the Unix socket path.
    public let boundAddress: String

    /// Connections idle this long are closed.
    static let idleTimeout = TimeAmount.minutes(5)

    private init(
        group: MultiThreadedEventLoopGroup, channel: any Channel, descriptor: CInt, socketFile: SocketFile?, boundAddress: String,
        logger: Logger
    ) {
        self.descriptor = descriptor
        self.group = group
        self.channel = channel
        self.socketFile = socketFile
        self.boundAddress = boundAddress
        self.logger = logger
    }

    /// Binds `address` (TCP endpoint or Unix socket path with file mode) and starts serving;
    /// with `inheritedDescriptor`, serves the socket a previous process listened on instead.
    /// Without `accepting` the socket is bound but not read until `setAccepting(true)`.
    public static func start(
        address: AdminAddress, context: AdminContext, logger: Logger, inheritedDescriptor: CInt? = nil, accepting: Bool = true
    ) async throws -> AdminServer {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let router = AdminRouter(context: context, logger: logger)
        let isUnix: Bool
        if case .unixSocket = address { isUnix = true } else { isUnix = false }
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 128)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.autoRead, value: accepting)
            .childChannelOption(.socketOption(.so_keepalive), value: 1)
            .childChannelInitializer { channel in
                let privileged = isUnix
                    ? PeerCheck.unixPeerPrivileged(channel)
                    : channel.eventLoop.makeSucceededFuture(PeerCheck.isPrivileged(tcpPeer: channel.remoteAddress))
                return privileged.flatMapThrowing { privileged in
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(IdleStateHandler(allTimeout: idleTimeout))
                    try pipeline.configureHTTPServerPipeline(withErrorHandling: true)
                    try pipeline.addHandler(AdminHTTPHandler(router: router, peerIsPrivileged: privileged))
                }
            }
        do {
            switch address {
            case .tcp(let endpoint):
                // Created here rather than by NIO so that its descriptor is known for a hot upgrade.
                let fd = try inheritedDescriptor
                    ?? SocketFactory(namespace: .home, mark: nil).makeListeningSocket(ListenerAddress(endpoint: endpoint), backlog: 128)
                let channel = try await bootstrap.withBoundSocket(fd).get()
                let bound = SocketEndpoint(channel.localAddress)?.description ?? endpoint.description
                logger.info("admin listening", metadata: ["address": "\(bound)"])
                return AdminServer(group: group, channel: channel, descriptor: fd, socketFile: nil, boundAddress: bound, logger: logger)
            case .unixSocket(let path, _) where inheritedDescriptor != nil:
                let channel = try await bootstrap.withBoundSocket(inheritedDescriptor!).get()
                logger.info("admin listening", metadata: ["address": "\(path)", "inherited": "true"])
                return AdminServer(
                    group: group, channel: channel, descriptor: inheritedDescriptor!, socketFile: SocketFile(path: path),
                    boundAddress: path, logger: logger)
            case .unixSocket(let path, let mode):
                let socket = try UnixListenSocket(path: path, mode: mode)
                let channel: any Channel
                do {
                    channel = try await bootstrap.withBoundSocket(socket.descriptor).get()
                } catch {
                    socket.file.removeIfUnchanged()
                    throw error
                }
                logger.info("admin listening", metadata: ["address": "\(path)"])
                return AdminServer(
                    group: group, channel: channel, descriptor: socket.descriptor, socketFile: socket.file, boundAddress: path,
                    logger: logger)
            }
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    /// Stops accepting, closes open admin connections and removes the socket file, if any.
    /// Calling it again does nothing.
    public func shutdown() async {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        // Unlink before closing: while our socket is open its inode cannot be reused, so an
        // unchanged inode really means the file is still ours (unless a new process took it over).
        if !released.load(ordering: .acquiring) { socketFile?.removeIfUnchanged() }
        try? await channel.close()
        try? await group.shutdownGracefully()
        logger.info("admin stopped")
    }

    /// Stops or resumes accepting; the socket and its queue stay.
    public func setAccepting(_ accepting: Bool) async {
        try? await channel.setOption(.autoRead, value: accepting)
    }

    /// Stops accepting and closes this process's copy of the listening socket, whose file and
    /// accept queue a new process now owns; open admin connections finish.
    public func release() async {
        released.store(true, ordering: .releasing)
        try? await channel.close()
    }
}
