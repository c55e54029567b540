import Logging
import NIOConcurrencyHelpers
import NIOCore
import SluiceModel

/// Active health checking of one cluster: a check loop per host on one event loop, marking
/// hosts FAILED_ACTIVE_HC and back as `HealthCheckSessionState` decides. Checks connect from
/// the proxy's own namespace through the socket factory, so they carry the proxy mark (or the
/// cluster's `upstream_bind_config` mark) and capture rules never loop them back.
final class HealthChecker: Sendable {
    private struct Session {
        var state: HealthCheckSessionState
        var task: Scheduled<Void>?
    }

    private let cluster: UpstreamCluster
    private let config: HealthCheckConfig
    private let socketFactory: SocketFactory
    private let eventLoop: any EventLoop
    private let stats: HealthCheckStats
    private let sessions = NIOLockedValueBox<[ObjectIdentifier: Session]>([:])
    private let stopped = NIOLockedValueBox(false)
    private let reconcileTask = NIOLockedValueBox<RepeatedTask?>(nil)
    /// Hosts present at start that have not had a first result yet; Envoy finishes a cluster's
    /// initialization only after this first round.
    private let awaitingFirstResult = NIOLockedValueBox<Set<ObjectIdentifier>>([])
    private let firstRoundPromise: EventLoopPromise<Void>
    private let firstRoundDone = NIOLockedValueBox(false)

    init(cluster: UpstreamCluster, config: HealthCheckConfig, socketFactory: SocketFactory, eventLoop: any EventLoop,
         stats: HealthCheckStats) {
        self.cluster = cluster
        self.config = config
        self.socketFactory = socketFactory
        self.eventLoop = eventLoop
        self.stats = stats
        self.firstRoundPromise = eventLoop.makePromise()
    }

    /// Completes when every host present at `start` had its first check (or on `stop`).
    var firstRound: EventLoopFuture<Void> { firstRoundPromise.futureResult }

    /// Starts checking every host, each after a random `initial_jitter`, and picks up host
    /// changes once per interval.
    func start() {
        let initial = Set(cluster.hostSet.allHosts.map(ObjectIdentifier.init))
        awaitingFirstResult.withLockedValue { $0 = initial }
        if initial.isEmpty { completeFirstRound() }
        reconcile()
        let interval = TimeAmount(config.interval)
        let task = eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [self] _ in reconcile() }
        reconcileTask.withLockedValue { $0 = task }
    }

    func stop() {
        stopped.withLockedValue { $0 = true }
        reconcileTask.withLockedValue { $0?.cancel() }
        let tasks = sessions.withLockedValue { sessions in
            defer { sessions = [:] }
            return sessions.values.compactMap(\.task)
        }
        for task in tasks { task.cancel() }
        completeFirstRound()
    }

    private func completeFirstRound() {
        let first = firstRoundDone.withLockedValue { done in
            defer { done = true }
            return !done
        }
        if first { firstRoundPromise.succeed() }
    }

    /// Counts `host`'s first result toward the first round.
    private func firstResult(of host: UpstreamHost) {
        let roundDone = awaitingFirstResult.withLockedValue { waiting in
            waiting.remove(ObjectIdentifier(host)) != nil && waiting.isEmpty
        }
        if roundDone { completeFirstRound() }
    }

    /// Checks new hosts at once (they stay unhealthy until their first check passes).
    func hostsChanged() {
        eventLoop.execute { [self] in reconcile() }
    }

    /// Adds sessions for new hosts and drops those of hosts that left.
    private func reconcile() {
        guard !stopped.withLockedValue({ $0 }) else { return }
        let hosts = cluster.hostSet.allHosts
        let live = Set(hosts.map(ObjectIdentifier.init))
        var added: [UpstreamHost] = []
        let dropped = sessions.withLockedValue { sessions -> [Scheduled<Void>] in
            var dropped: [Scheduled<Void>] = []
            for (id, session) in sessions where !live.contains(id) {
                if let task = session.task { dropped.append(task) }
                sessions[id] = nil
            }
            for host in hosts where sessions[ObjectIdentifier(host)] == nil {
                sessions[ObjectIdentifier(host)] = Session(
                    state: HealthCheckSessionState(config: config, startsFailed: host.failedActiveHealthCheck))
                added.append(host)
            }
            return dropped
        }
        for task in dropped { task.cancel() }
        // Hosts that left before their first check no longer hold up the first round.
        let roundDone = awaitingFirstResult.withLockedValue { waiting in
            let before = waiting.count
            waiting.formIntersection(live)
            return before > 0 && waiting.isEmpty
        }
        if roundDone { completeFirstRound() }
        for host in added {
            let jitter = HealthCheckSessionState.milliseconds(config.initialJitter)
            schedule(host, after: .milliseconds(jitter > 0 ? Int64.random(in: 0..<jitter) : 0))
        }
    }

    private func schedule(_ host: UpstreamHost, after delay: TimeAmount) {
        guard !stopped.withLockedValue({ $0 }) else { return }
        let task = eventLoop.scheduleTask(in: delay) { [self] in check(host) }
        sessions.withLockedValue { sessions in
            guard sessions[ObjectIdentifier(host)] != nil else {
                task.cancel()
                return
            }
            sessions[ObjectIdentifier(host)]?.task = task
        }
    }

    private func check(_ host: UpstreamHost) {
        stats.attempt.increment()
        let completion = HealthCheckCompletion(promise: eventLoop.makePromise(of: HealthCheckResult.self))
        let probe: HealthCheckProbeHandler.Probe
        switch config.kind {
        case .http(let http):
            probe = .http(request: HealthCheckProbeHandler.httpRequest(http, clusterName: cluster.config.name),
                          expected: http.expectedStatuses)
        case .tcp(let send, let receive):
            probe = .tcp(send: Array(send), receive: receive.map { Array($0) })
        }
        let timeout = TimeAmount(config.timeout)
        let connecting = socketFactory.connect(
            to: host.address, on: eventLoop, timeout: timeout, mark: cluster.config.upstreamMark, bufferLimit: 64 * 1024
        ) {
            HealthCheckProbeHandler(probe: probe, completion: completion)
        }
        connecting.whenFailure { _ in completion.complete(.networkFailure) }
        let timer = eventLoop.scheduleTask(in: timeout) {
            completion.complete(.networkFailure)
            connecting.whenSuccess { $0.close(promise: nil) }
        }
        completion.futureResult.whenComplete { [self] outcome in
            timer.cancel()
            let result = (try? outcome.get()) ?? .networkFailure
            completed(host, result)
        }
    }

    private func completed(_ host: UpstreamHost, _ result: HealthCheckResult) {
        switch result {
        case .success: stats.success.increment()
        case .activeFailure: stats.failure.increment()
        case .networkFailure:
            stats.failure.increment()
            stats.networkFailure.increment()
        }
        let hasTraffic = cluster.stats.upstreamConnectionsTotal.value > 0
        let decision = sessions.withLockedValue { sessions -> (HealthCheckSessionState.Transition, Duration, Bool)? in
            guard var session = sessions[ObjectIdentifier(host)] else { return nil }
            let transition = session.state.record(result)
            let interval = session.state.jittered(
                session.state.nextInterval(after: transition, clusterHasTraffic: hasTraffic),
                random: { Int64.random(in: 0..<$0) })
            sessions[ObjectIdentifier(host)] = session
            return (transition, interval, session.state.failed)
        }
        guard let (transition, interval, failed) = decision else {
            firstResult(of: host)
            return
        }
        if host.setFlag(UpstreamHost.HealthFlag.failedActiveHealthCheck, failed) { cluster.hostHealthChanged() }
        if result == .success { cluster.outlierDetector?.activeHealthCheckSucceeded(host) }
        _ = transition
        stats.healthy.set(Int64(cluster.hostSet.allHosts.filter { !$0.failedActiveHealthCheck }.count))
        firstResult(of: host)
        schedule(host, after: TimeAmount(interval))
    }
}

/// `cluster.<name>.health_check.*`.
struct HealthCheckStats: Sendable {
    let attempt: Counter
    let success: Counter
    let failure: Counter
    let networkFailure: Counter
    let passiveFailure: Counter
    let verifyCluster: Counter
    let healthy: Gauge

    init(cluster: String, store: StatsStore) {
        func name(_ leaf: String) -> StatName { .cluster(cluster, "health_check.\(leaf)") }
        attempt = store.counter(name("attempt"))
        success = store.counter(name("success"))
        failure = store.counter(name("failure"))
        networkFailure = store.counter(name("network_failure"))
        passiveFailure = store.counter(name("passive_failure"))
        verifyCluster = store.counter(name("verify_cluster"))
        healthy = store.gauge(name("healthy"))
    }
}
