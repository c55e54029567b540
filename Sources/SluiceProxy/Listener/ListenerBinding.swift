import Logging
import NIOCore
import NIOPosix
import SluiceModel

/// The bound sockets of one listener in one namespace, served by NIO.
final class ListenerBinding: Sendable {
    let listener: CompiledListener
    let channels: [any Channel]

    private init(listener: CompiledListener, channels: [any Channel]) {
        self.listener = listener
        self.channels = channels
    }

    /// Binds every address of `listener` inside the scope's namespace and starts accepting.
    static func bind(
        _ listener: CompiledListener,
        table: ListenerTable,
        scope: AcceptScope,
        clusters: ClusterManager,
        group: any EventLoopGroup,
        logger: Logger
    ) async throws -> ListenerBinding {
        let acceptor = ConnectionAcceptor(listener: listener, table: table, scope: scope, clusters: clusters, logger: logger)
        let limit = listener.config.perConnectionBufferLimitBytes
        var channels: [any Channel] = []
        do {
            for address in listener.config.addresses {
                let fd = try scope.socketFactory.makeListeningSocket(address)
                // Child options are set synchronously in the initializer (per-option futures cost
                // allocations per connection); TCP_NODELAY, a ServerBootstrap default on the
                // listening socket, is inherited by accepted sockets.
                let channel = try await ServerBootstrap(group: group)
                    .childChannelInitializer { child in
                        do {
                            try RelayOptions.apply(to: child.syncOptions!, bufferLimit: limit)
                        } catch {
                            return child.eventLoop.makeFailedFuture(error)
                        }
                        return acceptor.initialize(child)
                    }
                    .withBoundSocket(fd)
                    .get()
                channels.append(channel)
            }
        } catch {
            for channel in channels { try? await channel.close() }
            throw error
        }
        return ListenerBinding(listener: listener, channels: channels)
    }

    /// Stops accepting; established connections are not touched.
    func close() async {
        for channel in channels { try? await channel.close() }
    }

    var boundAddresses: [SocketEndpoint] {
        channels.compactMap { SocketEndpoint($0.localAddress) }
    }
}
