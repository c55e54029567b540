import Testing

@testable import SluiceUpgrade

@Suite struct UpgradeHandshakeTests {
    @Test func aRequestedUpgradeRunsEveryStepInOrder() {
        var handshake = UpgradeHandshake()
        #expect(handshake.requestReceived(binary: "/new") == .spawn(binary: "/new"))
        handshake.spawned(pid: 77)
        #expect(handshake.helloReceived(pid: 77) == .sendInventory)
        #expect(handshake.readyReceived() == .migrateNextBatch)
        #expect(handshake.batchMoved(count: 64, limit: 64) == .migrateNextBatch, "a full batch: more are waiting")
        #expect(handshake.batchMoved(count: 10, limit: 64) == .stopAcceptingAndMigrate, "backlog moved: stop accepting")
        #expect(handshake.batchMoved(count: 3, limit: 64) == .migrateNextBatch, "what arrived meanwhile")
        #expect(handshake.batchMoved(count: 0, limit: 64) == .finish)
        #expect(handshake.phase == .handedOver)
        #expect(handshake.failed() == .none, "after the hand-over there is nothing to roll back")
    }

    @Test func onlyOneUpgradeAtATime() {
        var handshake = UpgradeHandshake()
        _ = handshake.requestReceived(binary: "/new")
        handshake.spawned(pid: 77)
        #expect(handshake.requestReceived(binary: "/other") == .refuse(reason: "an upgrade is already running"))
        #expect(handshake.helloReceived(pid: 99) == .refuse(reason: "an upgrade is already running"),
                "a process other than the one started must not slip in")
        #expect(handshake.helloReceived(pid: 77) == .sendInventory)
        #expect(handshake.helloReceived(pid: 78) == .refuse(reason: "an upgrade is already running"))
    }

    @Test func failuresRollBackWhatWasDone() {
        var beforeReady = UpgradeHandshake()
        _ = beforeReady.requestReceived(binary: "/new")
        beforeReady.spawned(pid: 5)
        _ = beforeReady.helloReceived(pid: 5)
        #expect(beforeReady.failed() == .rollBack(resumeAccepting: false, kill: 5))
        #expect(beforeReady.phase == .idle)
        #expect(beforeReady.requestReceived(binary: "/again") == .spawn(binary: "/again"), "a later upgrade may run")

        var migrating = UpgradeHandshake()
        _ = migrating.helloReceived(pid: 8)
        _ = migrating.readyReceived()
        #expect(migrating.failed() == .rollBack(resumeAccepting: false, kill: nil),
                "still accepting: nothing to resume; a process this one did not start is not killed")

        var stopped = UpgradeHandshake()
        _ = stopped.helloReceived(pid: 9)
        _ = stopped.readyReceived()
        _ = stopped.batchMoved(count: 0, limit: 64)
        #expect(stopped.failed() == .rollBack(resumeAccepting: true, kill: nil), "listeners parked: accept again")
    }

    @Test func readyBeforeInventoryIsIgnored() {
        var handshake = UpgradeHandshake()
        #expect(handshake.readyReceived() == .none)
        #expect(handshake.batchMoved(count: 0, limit: 64) == .none)
        #expect(handshake.phase == .idle)
    }
}
