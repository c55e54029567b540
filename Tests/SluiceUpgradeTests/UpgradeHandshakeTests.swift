import Testing

@testable import SluiceUpgrade

@Suite struct UpgradeHandshakeTests {
    @Test func aRequestedUpgradeRunsEveryStepInOrder() {
        var handshake = UpgradeHandshake()
        #expect(handshake.requestReceived(binary: "/new") == .spawn(binary: "/new"))
        handshake.spawned(pid: 77)
        #expect(handshake.helloReceived(pid: 77) == .sendInventory)
        #expect(handshake.readyReceived() == .stopAcceptingAndMigrate)
        #expect(handshake.batchAdopted(more: true) == .migrateNextBatch)
        #expect(handshake.batchAdopted(more: false) == .finish)
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
        #expect(migrating.failed() == .rollBack(resumeAccepting: true, kill: nil),
                "a process this one did not start is not killed, and accepting resumes")
    }

    @Test func readyBeforeInventoryIsIgnored() {
        var handshake = UpgradeHandshake()
        #expect(handshake.readyReceived() == .none)
        #expect(handshake.batchAdopted(more: false) == .none)
        #expect(handshake.phase == .idle)
    }
}
