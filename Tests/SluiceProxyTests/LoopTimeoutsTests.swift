import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
@testable import SluiceProxy
import Testing

/// The per-loop timeout queues streams arm and cancel on every request.
@Suite struct LoopTimeoutsTests {
    /// Runs `body` on a fresh event loop and returns what the timeouts recorded after `wait`.
    private func record(wait: Duration, _ body: @escaping (LoopTimeouts, NIOLockedValueBox<[String]>) -> Void) async throws -> [String] {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let fired = NIOLockedValueBox<[String]>([])
        try await loop.submit {
            body(LoopTimeouts(eventLoop: loop), fired)
        }.get()
        try await Task.sleep(for: wait)
        let result = try await loop.submit { fired.withLockedValue { $0 } }.get()
        try await group.shutdownGracefully()
        return result
    }

    @Test func timeoutsFireOnceInDeadlineOrderUnlessCancelled() async throws {
        let fired = try await record(wait: .milliseconds(400)) { timeouts, fired in
            _ = timeouts.after(.milliseconds(120)) { fired.withLockedValue { $0.append("long") } }
            _ = timeouts.after(.milliseconds(40)) { fired.withLockedValue { $0.append("short") } }
            _ = timeouts.after(.milliseconds(40)) { fired.withLockedValue { $0.append("short-2") } }
            let cancelled = timeouts.after(.milliseconds(40)) { fired.withLockedValue { $0.append("cancelled") } }
            cancelled.cancel()
            _ = timeouts.at(.now() + .milliseconds(80)) { fired.withLockedValue { $0.append("at") } }
            let cancelledAt = timeouts.at(.now() + .milliseconds(80)) { fired.withLockedValue { $0.append("cancelled-at") } }
            cancelledAt.cancel()
        }
        #expect(fired == ["short", "short-2", "at", "long"])
    }

    @Test func manyCancelledTimeoutsDoNotHideTheLiveOnes() async throws {
        let fired = try await record(wait: .milliseconds(300)) { timeouts, fired in
            // Enough cancellations to make the queue drop them before their deadline.
            for index in 0..<1000 {
                let timeout = timeouts.after(.milliseconds(60)) { fired.withLockedValue { $0.append("cancelled \(index)") } }
                if index % 100 != 0 { timeout.cancel() }
            }
        }
        #expect(fired == (0..<10).map { "cancelled \($0 * 100)" })
    }

    @Test func aTimeoutArmedWhileOthersFireRunsToo() async throws {
        let fired = try await record(wait: .milliseconds(300)) { timeouts, fired in
            _ = timeouts.after(.milliseconds(30)) {
                fired.withLockedValue { $0.append("first") }
                // Re-armed from inside an expiry, as the stream idle timer does.
                _ = timeouts.after(.milliseconds(30)) { fired.withLockedValue { $0.append("second") } }
            }
        }
        #expect(fired == ["first", "second"])
    }
}
