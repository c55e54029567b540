import NIOCore

/// A pending timeout of a `LoopTimeouts`; cancelling it is O(1) and it never fires afterwards.
final class Timeout {
    fileprivate let deadline: NIODeadline
    fileprivate var action: (() -> Void)?
    fileprivate var scheduled: Scheduled<Void>?
    private let queue: TimeoutQueue?

    fileprivate init(deadline: NIODeadline, action: @escaping () -> Void, queue: TimeoutQueue?) {
        self.deadline = deadline
        self.action = action
        self.queue = queue
    }

    func cancel() {
        guard action != nil else { return }
        action = nil
        if let scheduled {
            scheduled.cancel()
        } else {
            queue?.noteCancelled()
        }
    }

    fileprivate func fire() {
        guard let action else { return }
        self.action = nil
        action()
    }
}

/// Timeouts of one duration on one event loop. Each is created `duration` from now, so they
/// arrive in deadline order: a FIFO keeps them sorted and one scheduled task serves them all.
/// Every request arms and cancels a few timeouts; in the event loop's own scheduler each would
/// be a heap insertion and an O(n) removal.
private final class TimeoutQueue {
    private let eventLoop: any EventLoop
    private let duration: TimeAmount
    private var entries = CircularBuffer<Timeout>()
    private var cancelledCount = 0
    private var wakeUp: NIODeadline?

    init(eventLoop: any EventLoop, duration: TimeAmount) {
        self.eventLoop = eventLoop
        self.duration = duration
    }

    func schedule(_ action: @escaping () -> Void) -> Timeout {
        let timeout = Timeout(deadline: .now() + duration, action: action, queue: self)
        entries.append(timeout)
        if wakeUp == nil { scheduleWakeUp(at: timeout.deadline) }
        return timeout
    }

    func noteCancelled() {
        cancelledCount += 1
        // Cancelled entries wait for their deadline to leave the queue; past half of it they
        // are dropped at once so a long timeout cannot hoard finished requests.
        if cancelledCount > 64, cancelledCount * 2 > entries.count {
            entries = CircularBuffer(entries.lazy.filter { $0.action != nil })
            cancelledCount = 0
        }
    }

    private func scheduleWakeUp(at deadline: NIODeadline) {
        wakeUp = deadline
        eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { self.expire() }
    }

    private func expire() {
        wakeUp = nil
        let now = NIODeadline.now()
        while let first = entries.first, first.action == nil || first.deadline <= now {
            entries.removeFirst()
            if first.action == nil {
                cancelledCount -= 1
            } else {
                first.fire()
            }
        }
        if let next = entries.first { scheduleWakeUp(at: next.deadline) }
    }
}

/// The timeouts of one event loop: `after(_:)` uses one queue per duration, `at(_:)` (for the
/// rare deadline out of that order) the event loop's scheduler. Only used on that loop.
final class LoopTimeouts {
    private let eventLoop: any EventLoop
    private var queues: [TimeAmount: TimeoutQueue] = [:]

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Runs `action` after `delay` unless the returned timeout is cancelled first.
    func after(_ delay: Duration, _ action: @escaping () -> Void) -> Timeout {
        let amount = TimeAmount(delay)
        if let queue = queues[amount] { return queue.schedule(action) }
        let queue = TimeoutQueue(eventLoop: eventLoop, duration: amount)
        queues[amount] = queue
        return queue.schedule(action)
    }

    /// Runs `action` at `deadline` unless the returned timeout is cancelled first.
    func at(_ deadline: NIODeadline, _ action: @escaping () -> Void) -> Timeout {
        let timeout = Timeout(deadline: deadline, action: action, queue: nil)
        timeout.scheduled = eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { timeout.fire() }
        return timeout
    }
}
