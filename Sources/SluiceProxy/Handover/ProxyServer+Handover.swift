import Foundation
import NIOCore
import NIOPosix
import SluiceLinux
import SluiceModel

/// What the hot upgrade needs from the data path: the listening sockets to hand over, a way to
/// stop and resume accepting, established connections to let go of, and, in the new process,
/// the adoption of those connections.
extension ProxyServer {
    /// A listening socket as the handover names it; the descriptor stays owned by the server.
    public struct ListenerSocket: Sendable {
        public var workload: String?
        public var listener: String
        public var namespace: NetworkNamespace.Identity
        public var address: SocketEndpoint
        public var descriptor: CInt
    }

    /// A served workload as the handover names it.
    public struct ServedWorkload: Sendable {
        public var identity: WorkloadIdentity
        public var namespace: NetworkNamespace
        public var inbound: InboundDelivery
    }

    /// Runs `body` with configuration and workload changes held back, so what it reads (the
    /// listeners, the workloads) stays as it is until it returns.
    public func holdingChanges<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let result = ResultBox<T>()
        try await changes.run { result.value = try await body() }
        return result.value!
    }

    /// Every listening socket being served: host listeners and the capture listeners of every
    /// workload (a closed channel's descriptor number may already belong to another socket).
    public var listenerSockets: [ListenerSocket] {
        ownedBindings.flatMap { owner in
            owner.binding.sockets.filter(\.channel.isActive).map { socket in
                ListenerSocket(
                    workload: owner.workload, listener: owner.name, namespace: owner.binding.namespace, address: socket.address,
                    descriptor: socket.descriptor)
            }
        }
    }

    /// The workloads being served, with their namespaces.
    public var servedWorkloads: [ServedWorkload] {
        workloads.withLockedValue { Array($0.values) }.sorted { $0.identity.id < $1.identity.id }.map {
            ServedWorkload(identity: $0.identity, namespace: $0.namespace, inbound: $0.scope.socketFactory.inbound)
        }
    }

    /// Stops (or resumes) accepting on every listener; the sockets and their queues stay.
    public func setAccepting(_ accepting: Bool) async {
        self.accepting.withLockedValue { $0 = accepting }
        for binding in allBindings { await binding.setAccepting(accepting) }
    }

    /// Stops accepting by closing this process's listening channels (the new process holds the
    /// sockets and accepts from the same queues; the bindings stay, with their connections),
    /// keeping one duplicate of each socket so that
    /// a rolled-back upgrade can listen on it again (`resumeParkedListeners`). Closing rather
    /// than pausing leaves no readiness registration behind on a socket another process reads.
    public func parkListeners() async {
        var parked: [ParkedListener] = []
        for (workload, name, binding) in ownedBindings {
            let copies = binding.sockets.map { socket in
                InheritedListener(
                    namespace: binding.namespace, address: socket.address, descriptor: fcntl(socket.descriptor, F_DUPFD_CLOEXEC, 0))
            }
            await binding.close()
            parked.append(ParkedListener(workload: workload, name: name, binding: binding, sockets: copies))
        }
        parkedListeners.withLockedValue { $0 += parked }
    }

    /// Listens again on the parked sockets (the upgrade was rolled back).
    public func resumeParkedListeners() async {
        for parked in parkedListeners.withLockedValue({ parked in defer { parked = [] }; return parked }) {
            let scope = parked.workload.flatMap { id in workloads.withLockedValue { $0[id] }?.scope } ?? hostScope
            do {
                let binding = try await ListenerBinding.bind(
                    parked.binding.listener, scope: scope, group: group, inherited: InheritedSockets(parked.sockets),
                    accepting: true, state: parked.binding.state, logger: logger)
                if let id = parked.workload {
                    workloads.withLockedValue { $0[id] }?.bindings.withLockedValue { $0[parked.name] = binding }
                } else {
                    hostBindings.withLockedValue { $0[parked.name] = binding }
                }
            } catch {
                logger.error("cannot listen again after a failed upgrade", metadata: ["listener": "\(parked.name)", "error": "\(error)"])
            }
        }
    }

    /// Lets go of the listeners for good (the new process owns them). The bindings stay, closed,
    /// so the connections that did not move are still counted until they finish.
    public func releaseListeners() async {
        for binding in allBindings { await binding.close() }
        drainHTTPConnections()
        for parked in parkedListeners.withLockedValue({ parked in defer { parked = [] }; return parked }) {
            for socket in parked.sockets { close(socket.descriptor) }
        }
    }

    /// HTTP connections cannot move mid-stream; they drain instead, as Envoy's do: HTTP/1
    /// responses say `Connection: close` from now on and idle connections close after the
    /// drain timeout, HTTP/2 connections get GOAWAY and close when their streams finish.
    public func drainHTTPConnections() {
        http.startDraining()
        for binding in allBindings {
            for channel in binding.state.connections.all {
                channel.pipeline.fireUserInboundEventTriggered(HTTPDrainEvent())
            }
        }
    }

    /// Connections still open on this process's listeners.
    public var openConnections: Int {
        allBindings.reduce(0) { $0 + $1.state.connections.count }
    }

    /// Lets go of up to `limit` established connections that can move (relaying both ways),
    /// each with duplicates of its two sockets. Connections still connecting, half-closed or
    /// closing stay here and finish normally.
    public func exportConnections(limit: Int) async -> [ExportedConnection] {
        let index = SocketDescriptorIndex()
        var exported: [ExportedConnection] = []
        for owner in ownedBindings {
            let byLoop = Dictionary(grouping: owner.binding.state.connections.all) { ObjectIdentifier($0.eventLoop) }
            for channels in byLoop.values {
                guard exported.count < limit, let loop = channels.first?.eventLoop else { break }
                let room = limit - exported.count
                let batch = try? await loop.submit { () -> [ExportedConnection] in
                    var batch: [ExportedConnection] = []
                    for channel in channels where batch.count < room {
                        guard let handler = try? channel.pipeline.syncOperations.handler(type: RelayHandler.self),
                              let connection = handler.session.export(workload: owner.workload, listener: owner.name, index: index)
                        else { continue }
                        batch.append(connection)
                    }
                    return batch
                }.get()
                exported += batch ?? []
            }
        }
        return exported
    }

    /// Takes over a connection another process let go of: both sockets become channels on one
    /// event loop, idle until `start()` (the giving process may still take it back until then).
    /// The descriptors are owned by this call (closed when adoption fails).
    public func adopt(_ record: MigratedConnection, downstream: CInt, upstream: CInt) async throws -> AdoptedConnection {
        let scope: AcceptScope
        let binding: ListenerBinding?
        if let id = record.workload {
            let runtime = workloads.withLockedValue { $0[id] }
            scope = runtime?.scope ?? hostScope
            binding = runtime?.bindings.withLockedValue { $0[record.listener] }
            guard runtime != nil else {
                close(downstream); close(upstream)
                throw AdoptionError(detail: "workload \(id) is not served here")
            }
        } else {
            scope = hostScope
            binding = hostBindings.withLockedValue { $0[record.listener] }
        }
        let metadata = ConnectionMetadata(destination: record.destination, source: record.source)
        let routeListener = scope.tables.listener(named: record.routeListener)
        guard let binding, let route = routeListener?.route(for: metadata),
              let cluster = scope.clusters.cluster(named: record.cluster)
        else {
            close(downstream); close(upstream)
            throw AdoptionError(detail: "no listener \(record.listener), route on \(record.routeListener) or cluster \(record.cluster) for \(record.source) → \(record.destination)")
        }
        let host = cluster.host(adopting: record.host)
        let mark = ConnectionMark()
        let origin = DownstreamOrigin(
            metadata: metadata, addressedToListener: false, transparentSource: nil, socketFactory: scope.socketFactory,
            workloadStats: scope.workloadStats, mark: mark)
        let downstreamLimit = binding.listener.config.perConnectionBufferLimitBytes
        let upstreamLimit = cluster.config.perConnectionBufferLimitBytes
        let pendingToDownstream = ByteBuffer(bytes: record.pendingToDownstream)
        let pendingToUpstream = ByteBuffer(bytes: record.pendingToUpstream)
        let clusters = scope.clusters
        let logger = self.logger
        let loop = group.next()
        return try await loop.flatSubmit { () -> EventLoopFuture<AdoptedConnection> in
            let session = NIOLoopBound(
                TCPProxySession(
                    route: route, origin: origin, clusters: clusters, eventLoop: loop, logger: logger,
                    machine: .adopted(maxConnectAttempts: route.config.maxConnectAttempts)),
                eventLoop: loop)
            let downstreamChannel = Self.channel(adopting: downstream, on: loop, bufferLimit: downstreamLimit) {
                RelayHandler(session: session.value, side: .downstream)
            }
            return downstreamChannel.flatMapError { error in
                close(upstream)
                return loop.makeFailedFuture(error)
            }.flatMap { downstreamChannel in
                ConnectionAcceptor.track(downstreamChannel, state: binding.state, workloadStats: scope.workloadStats, mark: mark)
                return Self.channel(adopting: upstream, on: loop, bufferLimit: upstreamLimit) {
                    RelayHandler(session: session.value, side: .upstream)
                }.flatMapError { error in
                    downstreamChannel.close(promise: nil)
                    return loop.makeFailedFuture(error)
                }
            }.map { upstreamChannel in
                host.connectionsActive.increment()
                cluster.stats.upstreamConnectionsActive.increment()
                return AdoptedConnection { [pendingToDownstream, pendingToUpstream] in
                    loop.execute {
                        session.value.resumeAdopted(
                            cluster: cluster, host: host, upstreamChannel: upstreamChannel,
                            pendingToDownstream: pendingToDownstream, pendingToUpstream: pendingToUpstream)
                    }
                }
            }
        }.get()
    }

    private static func channel(
        adopting descriptor: CInt, on loop: any EventLoop, bufferLimit: Int, handler: @escaping @Sendable () -> RelayHandler
    ) -> EventLoopFuture<any Channel> {
        ClientBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try RelayOptions.apply(to: channel.syncOptions!, bufferLimit: bufferLimit)
                    try channel.pipeline.syncOperations.addHandler(handler())
                }
            }
            .withConnectedSocket(descriptor)
    }

    /// Every binding with the workload (nil: the proxy's namespace) and listener name owning it.
    private var ownedBindings: [(workload: String?, name: String, binding: ListenerBinding)] {
        var owned: [(workload: String?, name: String, binding: ListenerBinding)] = []
        for (name, binding) in hostBindings.withLockedValue({ $0 }) { owned.append((nil, name, binding)) }
        for runtime in workloads.withLockedValue({ Array($0.values) }) {
            for (name, binding) in runtime.bindings.withLockedValue({ $0 }) { owned.append((runtime.identity.id, name, binding)) }
        }
        return owned
    }

    private var allBindings: [ListenerBinding] {
        var bindings = Array(hostBindings.withLockedValue { $0 }.values)
        for runtime in workloads.withLockedValue({ Array($0.values) }) {
            bindings += runtime.bindings.withLockedValue { Array($0.values) }
        }
        return bindings
    }
}

/// A connection taken over and not yet relaying: `start` writes what the previous process had
/// not written and resumes relaying both ways.
public struct AdoptedConnection: Sendable {
    private let resume: @Sendable () -> Void

    init(resume: @escaping @Sendable () -> Void) {
        self.resume = resume
    }

    public func start() { resume() }
}

/// A listener this process stopped serving during an upgrade, with duplicates of its sockets.
struct ParkedListener: Sendable {
    let workload: String?
    let name: String
    let binding: ListenerBinding
    let sockets: [InheritedListener]
}

private final class ResultBox<T>: @unchecked Sendable {
    // Written once inside the serial change queue, read after it finished.
    var value: T?
}
