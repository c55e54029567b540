import Foundation
import Logging
import NIOCore
import SluiceModel

/// Everything a proxied connection needs from the listener that accepted it.
struct TCPProxyRoute: Sendable {
    /// The listener whose filter chain this is.
    let listenerName: String
    let config: TCPProxyConfig
    let stats: TCPProxyStats
}

/// Set once a connection has moved to another process: its sockets are closed here without
/// counting as destroyed connections (the new process goes on counting them).
final class ConnectionMark: @unchecked Sendable {
    // Only touched on the connection's event loop.
    var migrated = false
}

/// Where a connection came from, for stats and upstream socket creation.
struct DownstreamOrigin: Sendable {
    let metadata: ConnectionMetadata
    /// Whether the connection came to the listener's own address, not redirected or handed
    /// over by TPROXY: its "original" destination is the proxy itself.
    let addressedToListener: Bool
    /// Set for TPROXY-delivered inbound connections: the client address the upstream
    /// connection leaves from, so the application sees the real client.
    let transparentSource: SocketEndpoint?
    let socketFactory: SocketFactory
    let workloadStats: WorkloadStats?
    let mark: ConnectionMark
}

/// One proxied TCP connection: chooses the upstream, connects (with retries), then relays bytes
/// both ways with backpressure, forwards half-closes, and enforces the idle timeout. Lives on the
/// downstream channel's event loop; the upstream channel is created on the same loop.
final class TCPProxySession {
    typealias Side = TCPProxyStateMachine.Side

    private var machine: TCPProxyStateMachine
    private let route: TCPProxyRoute
    private let origin: DownstreamOrigin
    private let clusters: ClusterManager
    private let eventLoop: any EventLoop
    private let logger: Logger

    private var downstream: ChannelHandlerContext?
    private var upstream: ChannelHandlerContext?
    private var cluster: UpstreamCluster?
    private var host: UpstreamHost?
    private var failedHosts: Set<ObjectIdentifier> = []

    /// Downstream bytes that arrived before the upstream connection existed.
    private var earlyDownstreamData: [ByteBuffer] = []
    private var downstreamPaused = false
    private var upstreamPaused = false
    private var downstreamBytesRead = 0
    private var upstreamBytesRead = 0
    private var downstreamInputClosed = false
    private var upstreamInputClosed = false
    /// What was written to each side and may not have reached its socket yet (for migration).
    private var toDownstream = OutboundTail()
    private var toUpstream = OutboundTail()
    private var lastActivity = NIODeadline.now()
    private var idleTimer: Scheduled<Void>?
    private var durationTimer: Scheduled<Void>?

    init(
        route: TCPProxyRoute, origin: DownstreamOrigin, clusters: ClusterManager, eventLoop: any EventLoop, logger: Logger,
        machine: TCPProxyStateMachine? = nil
    ) {
        self.machine = machine ?? TCPProxyStateMachine(maxConnectAttempts: route.config.maxConnectAttempts)
        self.route = route
        self.origin = origin
        self.clusters = clusters
        self.eventLoop = eventLoop
        self.logger = logger
    }

    // MARK: Events from the relay handlers

    func attach(_ context: ChannelHandlerContext, side: Side) {
        // An upstream is attached when its connect succeeds, except for an adopted connection.
        if side == .downstream { downstream = context } else if case .relaying = machine.state, upstream == nil { upstream = context }
    }

    func channelActive(_ side: Side) {
        if side == .downstream { perform(machine.downstreamActive()) }
    }

    func read(_ buffer: ByteBuffer, from side: Side, context: ChannelHandlerContext) {
        guard let target = peer(of: side, from: context) else {
            // NIO drains a socket that signalled end-of-input even while reading is off, so a
            // client that writes and half-closes before the upstream connects delivers early.
            if side == .downstream { earlyDownstreamData.append(buffer) }
            return
        }
        if side == .downstream {
            downstreamBytesRead += buffer.readableBytes
            toUpstream.append(buffer)
        } else {
            upstreamBytesRead += buffer.readableBytes
            toDownstream.append(buffer)
        }
        target.write(NIOAny(buffer), promise: nil)
    }

    func readComplete(from side: Side, context: ChannelHandlerContext) {
        guard let target = peer(of: side, from: context), let source = self.context(side) else { return }
        target.flush()
        trimTail(of: side.other, channel: target.channel)
        lastActivity = .now()
        recordBytes()
        if target.channel.isWritable {
            source.read()
        } else {
            setPaused(side, true)
        }
    }

    func writabilityChanged(_ side: Side, writable: Bool, context: ChannelHandlerContext) {
        guard writable, isCurrent(side, context), isPaused(side.other), let reader = self.context(side.other) else { return }
        setPaused(side.other, false)
        reader.read()
    }

    func inputClosed(_ side: Side, context: ChannelHandlerContext) {
        guard isCurrent(side, context), !origin.mark.migrated else { return }
        if side == .downstream { downstreamInputClosed = true } else { upstreamInputClosed = true }
        perform(machine.inputClosed(side))
    }

    func channelInactive(_ side: Side, context: ChannelHandlerContext) {
        guard isCurrent(side, context), !origin.mark.migrated else { return }
        perform(machine.channelInactive(side))
        if machine.state == .closed { cancelTimers() }
    }

    // MARK: Actions

    private func perform(_ action: TCPProxyStateMachine.Action) {
        switch action {
        case .none:
            break
        case .connect(let attempt):
            connect(attempt: attempt)
        case .startRelay(let downstreamAlreadyClosed):
            startRelay()
            if downstreamAlreadyClosed { perform(.shutdownOutput(.upstream)) }
        case .closeUpstream:
            upstream?.close(promise: nil)
        case .giveUp:
            downstream?.close(promise: nil)
        case .shutdownOutput(let side):
            guard let context = context(side) else { return }
            whenWritesComplete(context) { context.close(mode: .output, promise: nil) }
        case .flushAndClose(let side):
            guard let context = context(side) else { return }
            if side == .upstream {
                route.stats.upstreamFlushTotal.increment()
                route.stats.upstreamFlushActive.increment()
            }
            let flushActive = route.stats.upstreamFlushActive
            whenWritesComplete(context) {
                if side == .upstream { flushActive.decrement() }
                context.close(promise: nil)
            }
        case .closeBoth:
            cancelTimers()
            downstream?.close(promise: nil)
            upstream?.close(promise: nil)
        }
    }

    private func connect(attempt: Int) {
        if cluster == nil {
            guard let chosen = chooseCluster() else {
                route.stats.downstreamNoRoute.increment()
                perform(machine.noUpstream())
                return
            }
            cluster = chosen
        }
        guard let cluster else { return }
        let destination = origin.metadata.destination
        if case .originalDestination = cluster.config.discovery, origin.addressedToListener {
            // Not redirected: the "original" destination is this listener, and connecting there
            // would loop back into the proxy forever.
            logger.debug("refusing to connect a listener to itself", metadata: ["destination": "\(destination)"])
            cluster.stats.upstreamNoneHealthy.increment()
            perform(machine.noUpstream())
            return
        }
        guard let host = cluster.chooseHost(originalDestination: destination, excluding: failedHosts) else {
            cluster.stats.upstreamNoneHealthy.increment()
            perform(machine.noUpstream())
            return
        }
        // Envoy's tcp_proxy gives up on the connection when max_connections is reached.
        guard cluster.circuitBreakers.tryAcquire(.connections) else {
            perform(machine.noUpstream())
            return
        }
        self.host = host
        host.connectionsTotal.increment()
        host.connectionsActive.increment()
        host.markUsed(at: NIODeadline.now().uptimeNanoseconds)
        cluster.stats.upstreamConnectionsTotal.increment()
        cluster.stats.upstreamConnectionsActive.increment()

        let session = NIOLoopBound(self, eventLoop: eventLoop)
        origin.socketFactory.connect(
            to: host.address, on: eventLoop, timeout: TimeAmount(cluster.config.connectTimeout),
            mark: cluster.config.upstreamMark, transparentSource: origin.transparentSource,
            bufferLimit: cluster.config.perConnectionBufferLimitBytes
        ) {
            RelayHandler(session: session.value, side: .upstream)
        }.assumeIsolated().whenComplete { result in
            self.connectCompleted(result, host: host, cluster: cluster)
        }
    }

    private func connectCompleted(_ result: Result<any Channel, any Error>, host: UpstreamHost, cluster: UpstreamCluster) {
        switch result {
        case .success(let channel):
            trackUpstream(channel, host: host, cluster: cluster, holdsConnectionLimit: true)
            cluster.outlierDetector?.record(host: host, event: .connectSucceededFinal)
            upstream = try? channel.pipeline.syncOperations.context(handlerType: RelayHandler.self)
            let action = machine.connectSucceeded()
            perform(action)
        case .failure(let error):
            host.connectionsActive.decrement()
            host.connectFailures.increment()
            cluster.circuitBreakers.release(.connections)
            cluster.stats.upstreamConnectionsActive.decrement()
            cluster.stats.upstreamConnectFailures.increment()
            if case ChannelError.connectTimeout = error {
                cluster.stats.upstreamConnectTimeouts.increment()
                cluster.outlierDetector?.record(host: host, event: .timeout)
            } else {
                cluster.outlierDetector?.record(host: host, event: .connectFailed)
            }
            failedHosts.insert(ObjectIdentifier(host))
            logger.debug("upstream connect failed", metadata: ["host": "\(host.address)", "error": "\(error)"])
            let action = machine.connectFailed()
            if action == .giveUp, machine.maxConnectAttempts > 1 {
                cluster.stats.upstreamConnectAttemptsExceeded.increment()
            }
            perform(action)
        }
    }

    private func chooseCluster() -> UpstreamCluster? {
        switch route.config.route {
        case .cluster(let name):
            return clusters.cluster(named: name)
        case .weightedClusters(let weighted):
            let total = weighted.reduce(UInt64(0)) { $0 + UInt64($1.weight) }
            guard total > 0 else { return nil }
            var point = UInt64.random(in: 0..<total)
            for entry in weighted {
                if point < UInt64(entry.weight) { return clusters.cluster(named: entry.name) }
                point -= UInt64(entry.weight)
            }
            return nil
        }
    }

    private func startRelay() {
        lastActivity = .now()
        if let idle = route.config.idleTimeout { scheduleIdleCheck(after: TimeAmount(idle)) }
        if let limit = route.config.maxDownstreamConnectionDuration {
            let stats = route.stats
            durationTimer = eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(limit)) {
                stats.maxDownstreamConnectionDurationReached.increment()
                self.perform(self.machine.timedOut())
            }
        }
        if let upstream, !earlyDownstreamData.isEmpty {
            for buffer in earlyDownstreamData {
                downstreamBytesRead += buffer.readableBytes
                toUpstream.append(buffer)
                upstream.write(NIOAny(buffer), promise: nil)
            }
            earlyDownstreamData = []
            upstream.flush()
            trimTail(of: .upstream, channel: upstream.channel)
            recordBytes()
        }
        downstream?.read()
        upstream?.read()
    }

    private func scheduleIdleCheck(after delay: TimeAmount) {
        idleTimer = eventLoop.assumeIsolated().scheduleTask(in: delay) {
            self.checkIdle()
        }
    }

    private func checkIdle() {
        guard let idle = route.config.idleTimeout, machine.state != .closed else { return }
        let timeout = TimeAmount(idle)
        let quiet = NIODeadline.now() - lastActivity
        if quiet >= timeout {
            route.stats.idleTimeout.increment()
            perform(machine.timedOut())
        } else {
            scheduleIdleCheck(after: timeout - quiet)
        }
    }

    private func cancelTimers() {
        idleTimer?.cancel()
        durationTimer?.cancel()
        idleTimer = nil
        durationTimer = nil
        recordBytes()
    }

    /// Counts the upstream connection as active until its channel closes; a connection that
    /// moved to another process is not counted as destroyed here.
    private func trackUpstream(_ channel: any Channel, host: UpstreamHost, cluster: UpstreamCluster, holdsConnectionLimit: Bool) {
        let mark = origin.mark
        channel.closeFuture.assumeIsolated().whenComplete { _ in
            if holdsConnectionLimit { cluster.circuitBreakers.release(.connections) }
            host.connectionsActive.decrement()
            cluster.stats.upstreamConnectionsActive.decrement()
            if !mark.migrated { cluster.stats.upstreamConnectionsDestroyed.increment() }
        }
    }

    // MARK: Migration

    /// Lets go of a relaying connection for another process: stops relaying, records the
    /// bytes NIO has not written yet on either side, duplicates both sockets and closes the
    /// channels here (closing a duplicated descriptor sends nothing to the peers). Nil when the
    /// connection is not in a state that can move (connecting, half-closed, closing).
    func export(workload: String?, listener: String, index: SocketDescriptorIndex) -> ExportedConnection? {
        guard case .relaying(downstreamOpen: true, upstreamOpen: true) = machine.state, !downstreamInputClosed,
              !upstreamInputClosed, !origin.mark.migrated, let downstream, let upstream, let cluster, let host,
              let toDownstreamBytes = toDownstream.last(Self.unwritten(downstream.channel)),
              let toUpstreamBytes = toUpstream.last(Self.unwritten(upstream.channel)),
              let downstreamFD = index.descriptor(of: downstream.channel),
              let upstreamFD = index.descriptor(of: upstream.channel)
        else { return nil }
        let downstreamCopy = fcntl(downstreamFD, F_DUPFD_CLOEXEC, 0)
        let upstreamCopy = fcntl(upstreamFD, F_DUPFD_CLOEXEC, 0)
        guard downstreamCopy >= 0, upstreamCopy >= 0 else {
            if downstreamCopy >= 0 { close(downstreamCopy) }
            if upstreamCopy >= 0 { close(upstreamCopy) }
            return nil
        }
        origin.mark.migrated = true
        cancelTimers()
        downstream.close(promise: nil)
        upstream.close(promise: nil)
        let record = MigratedConnection(
            workload: workload, listener: listener, routeListener: route.listenerName,
            destination: origin.metadata.destination, source: origin.metadata.source, cluster: cluster.config.name,
            host: host.address, pendingToDownstream: toDownstreamBytes, pendingToUpstream: toUpstreamBytes)
        return ExportedConnection(record: record, downstreamDescriptor: downstreamCopy, upstreamDescriptor: upstreamCopy)
    }

    /// Continues a connection another process let go of, once both its channels are attached:
    /// first the bytes that process had not written yet, then relaying as before.
    func resumeAdopted(cluster: UpstreamCluster, host: UpstreamHost, upstreamChannel: any Channel,
                       pendingToDownstream: ByteBuffer, pendingToUpstream: ByteBuffer) {
        self.cluster = cluster
        self.host = host
        // A connection taken over counts against max_connections, but is never refused for it.
        let counted = cluster.circuitBreakers.limits(.default).connections.tryAcquire()
        trackUpstream(upstreamChannel, host: host, cluster: cluster, holdsConnectionLimit: counted)
        for (side, bytes) in [(Side.downstream, pendingToDownstream), (.upstream, pendingToUpstream)] where bytes.readableBytes > 0 {
            guard let context = context(side) else { continue }
            if side == .downstream { toDownstream.append(bytes) } else { toUpstream.append(bytes) }
            context.writeAndFlush(NIOAny(bytes), promise: nil)
            trimTail(of: side, channel: context.channel)
        }
        startRelay()
    }

    /// Bytes given to the channel and not yet written to its socket.
    private static func unwritten(_ channel: any Channel) -> Int {
        (try? channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? Int.max
    }

    private func trimTail(of side: Side, channel: any Channel) {
        if side == .downstream {
            if !toDownstream.isEmpty { toDownstream.trim(toCover: Self.unwritten(channel)) }
        } else if !toUpstream.isEmpty {
            toUpstream.trim(toCover: Self.unwritten(channel))
        }
    }

    // MARK: Helpers

    private func context(_ side: Side) -> ChannelHandlerContext? {
        side == .downstream ? downstream : upstream
    }

    private func isCurrent(_ side: Side, _ context: ChannelHandlerContext) -> Bool {
        side == .downstream || context === upstream
    }

    private func peer(of side: Side, from context: ChannelHandlerContext) -> ChannelHandlerContext? {
        guard isCurrent(side, context) else { return nil }
        return self.context(side.other)
    }

    private func isPaused(_ side: Side) -> Bool { side == .downstream ? downstreamPaused : upstreamPaused }

    private func setPaused(_ side: Side, _ paused: Bool) {
        if side == .downstream {
            downstreamPaused = paused
            (paused ? route.stats.downstreamFlowControlPaused : route.stats.downstreamFlowControlResumed).increment()
        } else {
            upstreamPaused = paused
            if let cluster {
                (paused ? cluster.stats.upstreamFlowControlPaused : cluster.stats.upstreamFlowControlResumed).increment()
            }
        }
    }

    /// Runs `body` once every write queued so far on `context` has reached the socket.
    private func whenWritesComplete(_ context: ChannelHandlerContext, _ body: @escaping () -> Void) {
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(NIOAny(ByteBuffer()), promise: promise)
        promise.futureResult.assumeIsolated().whenComplete { _ in body() }
    }

    private func recordBytes() {
        if downstreamBytesRead > 0 {
            let bytes = UInt64(downstreamBytesRead)
            route.stats.downstreamBytesReceived.add(bytes)
            cluster?.stats.upstreamBytesSent.add(bytes)
            origin.workloadStats?.bytesReceived.add(bytes)
            downstreamBytesRead = 0
        }
        if upstreamBytesRead > 0 {
            let bytes = UInt64(upstreamBytesRead)
            cluster?.stats.upstreamBytesReceived.add(bytes)
            route.stats.downstreamBytesSent.add(bytes)
            origin.workloadStats?.bytesSent.add(bytes)
            upstreamBytesRead = 0
        }
    }
}

extension TimeAmount {
    /// Converts a Swift `Duration` (nanosecond precision is plenty here).
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
