import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import SluiceLinux
import SluiceModel

/// The connections of one event loop to one upstream host, for one protocol. HTTP/1
/// connections carry one exchange at a time and are reused; HTTP/2 exchanges share one
/// connection as streams (a new one is opened when it drains).
final class HTTPUpstreamHostPool {
    private let eventLoop: any EventLoop
    let host: UpstreamHost
    private let cluster: UpstreamCluster
    private let socketFactory: SocketFactory
    private let transparentSource: SocketEndpoint?
    private let upstreamProtocol: UpstreamHTTPProtocol
    private let http2Settings: HTTP2ProtocolOptions
    private let stats: HTTPClusterStats

    private var idle: [UpstreamHTTP1Connection] = []
    private var connections = 0
    private var connecting = 0
    private var http2: UpstreamHTTP2Connection?
    /// Set once the host left its cluster: connections close when their exchange ends.
    private var retired = false
    private var waiters: [(receiver: any UpstreamResponseReceiver, done: (Result<any UpstreamRequestSink, UpstreamFailure>) -> Void)] = []

    init(
        eventLoop: any EventLoop, host: UpstreamHost, cluster: UpstreamCluster, socketFactory: SocketFactory,
        transparentSource: SocketEndpoint?, upstreamProtocol: UpstreamHTTPProtocol, http2Settings: HTTP2ProtocolOptions,
        stats: HTTPClusterStats
    ) {
        self.eventLoop = eventLoop
        self.host = host
        self.cluster = cluster
        self.socketFactory = socketFactory
        self.transparentSource = transparentSource
        self.upstreamProtocol = upstreamProtocol
        self.http2Settings = http2Settings
        self.stats = stats
    }

    /// Lends a request sink for one exchange: at once when a connection is free, after a
    /// connect otherwise; fails with `overflow` past the pending-request limit.
    func acquire(
        for receiver: any UpstreamResponseReceiver,
        _ done: @escaping (Result<any UpstreamRequestSink, UpstreamFailure>) -> Void
    ) -> Bool {
        switch upstreamProtocol {
        case .http1:
            while let connection = idle.popLast() {
                guard connection.isOpen else { continue }
                connection.begin(receiver)
                done(.success(connection))
                return true
            }
        case .http2:
            if let http2, http2.isUsable {
                open(on: http2, receiver: receiver, done)
                return true
            }
        }
        // Envoy's `max_pending_requests`: a request waiting for a connection holds a slot.
        guard cluster.circuitBreakers.tryAcquire(.pendingRequests) else { return false }
        stats.pendingTotal.increment()
        stats.pendingActive.increment()
        waiters.append((receiver, done))
        let wanted = upstreamProtocol == .http2 ? (connecting == 0 ? 1 : 0) : 1
        // Past `max_connections` the request waits for a connection to come free.
        if wanted > 0, cluster.circuitBreakers.tryAcquire(.connections) { connect() }
        return true
    }

    /// Stops keeping connections: idle ones close now, busy ones after their exchanges; requests
    /// already waiting are still served.
    func retire() {
        retired = true
        for connection in idle { connection.reset() }
        idle.removeAll()
        http2?.closeWhenIdle()
        http2 = nil
    }

    /// Removes a waiter whose stream ended before it got a connection.
    func cancelWaiting(_ receiver: any UpstreamResponseReceiver) {
        if let index = waiters.firstIndex(where: { $0.receiver === receiver }) {
            waiters.remove(at: index)
            stats.pendingActive.decrement()
            cluster.circuitBreakers.release(.pendingRequests)
        }
    }

    private func open(on connection: UpstreamHTTP2Connection, receiver: any UpstreamResponseReceiver,
                      _ done: @escaping (Result<any UpstreamRequestSink, UpstreamFailure>) -> Void) {
        connection.openStream(for: receiver).whenComplete { result in
            switch result {
            case .success(let sink): done(.success(sink))
            case .failure: done(.failure(.reset))
            }
        }
    }

    private func connect() {
        connecting += 1
        host.connectionsTotal.increment()
        host.connectionsActive.increment()
        cluster.stats.upstreamConnectionsTotal.increment()
        cluster.stats.upstreamConnectionsActive.increment()
        (upstreamProtocol == .http2 ? stats.http2ConnectionsTotal : stats.http1ConnectionsTotal).increment()
        let upstreamProtocol = self.upstreamProtocol
        let maxExchanges = cluster.config.upstreamHTTP.maxRequestsPerConnection
        socketFactory.connect(
            to: host.address, on: eventLoop, timeout: TimeAmount(cluster.config.connectTimeout),
            mark: cluster.config.upstreamMark, transparentSource: transparentSource,
            bufferLimit: cluster.config.perConnectionBufferLimitBytes
        ) {
            upstreamProtocol == .http1
                ? UpstreamHTTP1Connection(maxExchanges: maxExchanges) as any ChannelHandler
                : PassThroughHandler()
        }.assumeIsolated().whenComplete { result in
            self.connecting -= 1
            switch result {
            case .success(let channel): self.connected(channel)
            case .failure(let error): self.connectFailed(error)
            }
        }
    }

    private func connected(_ channel: any Channel) {
        connections += 1
        let host = self.host
        let cluster = self.cluster
        cluster.outlierDetector?.record(host: host, event: .connectSucceeded)
        channel.closeFuture.assumeIsolated().whenComplete { _ in
            self.connections -= 1
            cluster.circuitBreakers.release(.connections)
            host.connectionsActive.decrement()
            cluster.stats.upstreamConnectionsActive.decrement()
            cluster.stats.upstreamConnectionsDestroyed.increment()
        }
        do {
            switch upstreamProtocol {
            case .http1:
                let connection = try channel.pipeline.syncOperations.handler(type: UpstreamHTTP1Connection.self)
                try channel.pipeline.syncOperations.addHandlers(
                    [FlushCoalescingHandler(), HTTPRequestEncoder(), ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes))],
                    position: .before(connection))
                connection.onIdle = { [weak self] (connection: UpstreamHTTP1Connection) in self?.release(connection) }
                connection.onClose = { [weak self] (connection: UpstreamHTTP1Connection) in
                    self?.idle.removeAll { $0 === connection }
                }
                try channel.syncOptions?.setOption(.autoRead, value: true)
                release(connection)
            case .http2:
                let connection = try UpstreamHTTP2Connection.configure(
                    channel, settings: http2Settings)
                connection.onUnusable = { [weak self] (connection: UpstreamHTTP2Connection) in
                    guard let self, self.http2 === connection else { return }
                    self.http2 = nil
                }
                if retired {
                    connection.closeWhenIdle()
                } else {
                    http2 = connection
                }
                let ready = waiters
                waiters.removeAll()
                for waiter in ready {
                    stats.pendingActive.decrement()
                    cluster.circuitBreakers.release(.pendingRequests)
                    open(on: connection, receiver: waiter.receiver, waiter.done)
                }
            }
        } catch {
            channel.close(promise: nil)
            connectFailed(error)
        }
    }

    /// An idle HTTP/1 connection serves the oldest waiter or waits for the next request.
    private func release(_ connection: UpstreamHTTP1Connection) {
        if !waiters.isEmpty {
            let waiter = waiters.removeFirst()
            stats.pendingActive.decrement()
            cluster.circuitBreakers.release(.pendingRequests)
            connection.begin(waiter.receiver)
            waiter.done(.success(connection))
        } else if retired {
            connection.reset()
        } else {
            idle.append(connection)
            closeIfStillIdle(connection)
        }
    }

    /// The cluster's `common_http_protocol_options.idle_timeout` (1 h by default): a connection
    /// that carried nothing more for that long is closed. One check is pending per connection
    /// at a time; it looks again when the connection was busy in between.
    private func closeIfStillIdle(_ connection: UpstreamHTTP1Connection) {
        guard let timeout = cluster.config.upstreamHTTP.idleTimeout else { return }
        connection.idleSince = .now()
        guard !connection.idleCheckPending else { return }
        armIdleCheck(connection, at: connection.idleSince + TimeAmount(timeout), timeout: TimeAmount(timeout))
    }

    private func armIdleCheck(_ connection: UpstreamHTTP1Connection, at deadline: NIODeadline, timeout: TimeAmount) {
        connection.idleCheckPending = true
        eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self, weak connection] in
            guard let self, let connection else { return }
            connection.idleCheckPending = false
            guard connection.isIdle else { return }
            let due = connection.idleSince + timeout
            if due > .now() {
                self.armIdleCheck(connection, at: due, timeout: timeout)
                return
            }
            self.idle.removeAll { $0 === connection }
            self.stats.idleTimeouts.increment()
            connection.reset()
        }
    }

    private func connectFailed(_ error: any Error) {
        cluster.circuitBreakers.release(.connections)
        cluster.outlierDetector?.record(host: host, event: .connectFailed)
        host.connectionsActive.decrement()
        host.connectFailures.increment()
        cluster.stats.upstreamConnectionsActive.decrement()
        cluster.stats.upstreamConnectFailures.increment()
        let failure: UpstreamFailure
        if case ChannelError.connectTimeout = error {
            cluster.stats.upstreamConnectTimeouts.increment()
            failure = .connectTimeout
        } else {
            failure = .connectFailure(Self.transportFailureReason(error))
        }
        // The attempt was made for the oldest waiter (HTTP/2: for all of them); when nothing
        // else is connected or connecting, nobody is left to serve the rest either.
        if upstreamProtocol == .http2 || connections + connecting == 0 {
            failWaiters(failure, count: waiters.count)
        } else {
            failWaiters(failure, count: 1)
        }
    }

    private func failWaiters(_ failure: UpstreamFailure, count: Int) {
        for waiter in waiters.prefix(count) {
            stats.pendingActive.decrement()
            cluster.circuitBreakers.release(.pendingRequests)
            waiter.done(.failure(failure))
        }
        waiters.removeFirst(min(count, waiters.count))
    }

    /// Envoy's transport failure text, e.g. `delayed connect error: Connection refused`.
    static func transportFailureReason(_ error: any Error) -> String {
        if let io = error as? IOError {
            return "delayed connect error: \(String(cString: strerror(io.errnoCode)))"
        }
        if let connect = error as? NIOConnectionError, let first = connect.connectionErrors.first {
            return transportFailureReason(first.error)
        }
        return "\(error)"
    }
}

/// Placeholder on a new HTTP/2 connection until its pipeline is configured.
private final class PassThroughHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
}
