import NIOCore
import NIOHTTP1
import SluiceModel

/// A copy of a request sent to a mirror cluster (`request_mirror_policies`): the same head
/// with `-shadow` appended to the authority, the same body; its response is read and dropped,
/// and nothing about it reaches the client.
final class ShadowRequest: UpstreamResponseReceiver {
    private enum Part {
        case head(HTTPRequestHead)
        case body(ByteBuffer)
        case end(HTTPHeaders?)
    }

    private var sink: (any UpstreamRequestSink)?
    private var queued: [Part] = []
    private var host: UpstreamHost?
    private var stats: HTTPClusterStats?
    private var done = false
    /// Keeps the copy alive until its response ended: the original stream may finish first, and
    /// connections hold their exchange only weakly.
    private var inFlight: ShadowRequest?

    /// Starts the copy toward `cluster`; false when no host is available (the copy is dropped).
    func start(
        head: HTTPRequestHead, cluster: UpstreamCluster, connection: HTTPDownstreamConnection,
        eventLoop: any EventLoop, upstreamProtocol: UpstreamHTTPProtocol
    ) -> Bool {
        guard let host = cluster.chooseHost(LoadBalancerContext(originalDestination: connection.local)) else { return false }
        self.host = host
        inFlight = self
        host.activeRequests.increment()
        var head = head
        if let authority = head.headers.first(name: "host") { head.headers.replaceOrAdd(name: "host", value: authority + "-shadow") }
        queued.append(.head(head))
        let stats = connection.runtime.clusterStats(cluster)
        self.stats = stats
        stats.requestsTotal.increment()
        let pool = connection.loop.pools.pool(
            host: host, cluster: cluster, connection: connection, upstreamProtocol: upstreamProtocol)
        let accepted = pool.acquire(for: self) { [self] result in
            guard case .success(let sink) = result, !done else {
                if case .success(let sink) = result { sink.reset() }
                finish()
                return
            }
            self.sink = sink
            for part in queued { write(part, to: sink) }
            queued.removeAll()
        }
        if !accepted { finish() }
        return accepted
    }

    func body(_ body: ByteBuffer) { send(.body(body)) }

    func end(_ trailers: HTTPHeaders?) { send(.end(trailers)) }

    /// The original request was abandoned: the copy goes too.
    func cancel() {
        sink?.reset()
        finish()
    }

    private func send(_ part: Part) {
        guard !done else { return }
        if let sink { write(part, to: sink) } else { queued.append(part) }
    }

    private func write(_ part: Part, to sink: any UpstreamRequestSink) {
        switch part {
        case .head(let head): sink.writeHead(head)
        case .body(let body): sink.writeBody(body)
        case .end(let trailers): sink.writeEnd(trailers)
        }
    }

    private func finish() {
        guard !done else { return }
        done = true
        host?.activeRequests.decrement()
        queued.removeAll()
        inFlight = nil
    }

    // MARK: UpstreamResponseReceiver (the mirror's answer is ignored)

    func upstreamResponseHead(_ head: HTTPResponseHead) {
        stats?.countResponse(status: Int(head.status.code))
    }
    func upstreamResponseBody(_ body: ByteBuffer) {}
    func upstreamResponseEnd(_ trailers: HTTPHeaders?) {
        sink = nil
        finish()
    }
    func upstreamFailed(_ failure: UpstreamFailure) {
        sink = nil
        finish()
    }
    func upstreamWritabilityChanged(_ writable: Bool) {}
    var downstreamWritable: Bool { true }
}
