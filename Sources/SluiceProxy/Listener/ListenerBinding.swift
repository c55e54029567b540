import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SluiceLinux
import SluiceModel

/// The live connections a listener accepted, so draining can close them later.
final class ConnectionSet: Sendable {
    private let channels = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])

    func insert(_ channel: any Channel) {
        let key = ObjectIdentifier(channel)
        channels.withLockedValue { $0[key] = channel }
        channel.closeFuture.whenComplete { _ in
            _ = self.channels.withLockedValue { $0.removeValue(forKey: key) }
        }
    }

    var count: Int { channels.withLockedValue { $0.count } }

    var all: [any Channel] { channels.withLockedValue { Array($0.values) } }

    func closeAll() {
        for channel in channels.withLockedValue({ Array($0.values) }) { channel.close(promise: nil) }
    }
}

/// What a listener's accept path reads for each connection: its current configuration, which
/// an update may swap in place (same addresses, so the sockets and their accept queues stay),
/// and the set of connections it accepted.
final class ListenerState: Sendable {
    private let current: NIOLockedValueBox<CompiledListener>
    let connections = ConnectionSet()

    init(_ listener: CompiledListener) {
        current = NIOLockedValueBox(listener)
    }

    var listener: CompiledListener { current.withLockedValue { $0 } }

    func update(_ listener: CompiledListener) {
        current.withLockedValue { $0 = listener }
    }
}

/// The bound sockets of one listener in one namespace, served by NIO.
final class ListenerBinding: Sendable {
    /// One bound socket: its address and descriptor (valid while its channel is open).
    struct Socket: Sendable {
        let address: SocketEndpoint
        let descriptor: CInt
        let channel: any Channel
    }

    let state: ListenerState
    let sockets: [Socket]
    let namespace: NetworkNamespace.Identity

    private init(state: ListenerState, sockets: [Socket], namespace: NetworkNamespace.Identity) {
        self.state = state
        self.sockets = sockets
        self.namespace = namespace
    }

    var channels: [any Channel] { sockets.map(\.channel) }

    var listener: CompiledListener { state.listener }

    /// Binds every address of `listener` inside the scope's namespace and starts accepting.
    /// A socket `inherited` from the previous proxy process for the same namespace and address
    /// is used instead of a new one; without `accepting` the sockets are bound but not yet read.
    static func bind(
        _ listener: CompiledListener, scope: AcceptScope, group: any EventLoopGroup, inherited: InheritedSockets?,
        accepting: Bool, state existing: ListenerState? = nil, logger: Logger
    ) async throws -> ListenerBinding {
        let state = existing ?? ListenerState(listener)
        let acceptor = ConnectionAcceptor(state: state, scope: scope, logger: logger)
        let limit = listener.config.perConnectionBufferLimitBytes
        var sockets: [Socket] = []
        do {
            for address in listener.config.addresses {
                let transparent = scope.socketFactory.inbound == .transparent && listener.config.capture == .inbound
                let fd = try inherited?.claim(namespace: scope.socketFactory.namespace.identity, address: address.endpoint)
                    ?? scope.socketFactory.makeListeningSocket(address, transparent: transparent)
                // Child options are set synchronously in the initializer (per-option futures cost
                // allocations per connection); TCP_NODELAY, a ServerBootstrap default on the
                // listening socket, is inherited by accepted sockets.
                let channel = try await ServerBootstrap(group: group)
                    .serverChannelOption(.autoRead, value: accepting)
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
                sockets.append(Socket(address: address.endpoint, descriptor: fd, channel: channel))
            }
        } catch {
            for socket in sockets { try? await socket.channel.close() }
            throw error
        }
        return ListenerBinding(state: state, sockets: sockets, namespace: scope.socketFactory.namespace.identity)
    }

    /// Stops or resumes accepting without closing the sockets: connections wait in the accept
    /// queue, which another process sharing the socket may drain meanwhile.
    func setAccepting(_ accepting: Bool) async {
        for channel in channels { try? await channel.setOption(.autoRead, value: accepting) }
    }

    /// Stops accepting; established connections are not touched.
    func close() async {
        for channel in channels { try? await channel.close() }
    }

    /// Stops accepting now and closes the connections still open after `drainTime` (Envoy's
    /// listener drain for TCP).
    func drain(after drainTime: TimeAmount, on eventLoop: any EventLoop) async {
        await close()
        let connections = state.connections
        eventLoop.scheduleTask(in: drainTime) { connections.closeAll() }
    }

    var boundAddresses: [SocketEndpoint] {
        channels.compactMap { SocketEndpoint($0.localAddress) }
    }
}
