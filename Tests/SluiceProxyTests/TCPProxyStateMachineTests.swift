@testable import SluiceProxy
import Testing

@Suite struct TCPProxyStateMachineTests {
    @Test func connectsThenRelays() {
        var machine = TCPProxyStateMachine(maxConnectAttempts: 1)
        #expect(machine.downstreamActive() == .connect(attempt: 1))
        #expect(machine.connectSucceeded() == .startRelay(downstreamAlreadyClosed: false))
        #expect(machine.state == .relaying(downstreamOpen: true, upstreamOpen: true))
    }

    @Test func anEarlyClientFINIsForwardedOnceConnected() {
        var machine = TCPProxyStateMachine(maxConnectAttempts: 2)
        _ = machine.downstreamActive()
        #expect(machine.inputClosed(.downstream) == TCPProxyStateMachine.Action.none)
        #expect(machine.connectFailed() == .connect(attempt: 2))
        #expect(machine.connectSucceeded() == .startRelay(downstreamAlreadyClosed: true))
    }

    @Test func retriesUpToMaxConnectAttempts() {
        var machine = TCPProxyStateMachine(maxConnectAttempts: 3)
        _ = machine.downstreamActive()
        #expect(machine.connectFailed() == .connect(attempt: 2))
        #expect(machine.connectFailed() == .connect(attempt: 3))
        #expect(machine.connectFailed() == .giveUp)
        #expect(machine.state == .closed)
    }

    @Test func halfCloseIsForwardedToTheOtherSide() {
        var machine = TCPProxyStateMachine(maxConnectAttempts: 1)
        _ = machine.downstreamActive()
        _ = machine.connectSucceeded()
        #expect(machine.inputClosed(.downstream) == .shutdownOutput(.upstream))
        #expect(machine.inputClosed(.upstream) == .shutdownOutput(.downstream))
    }

    @Test func oneSideGoingAwayFlushesAndClosesTheOther() {
        var machine = TCPProxyStateMachine(maxConnectAttempts: 1)
        _ = machine.downstreamActive()
        _ = machine.connectSucceeded()
        #expect(machine.channelInactive(.upstream) == .flushAndClose(.downstream))
        #expect(machine.channelInactive(.downstream) == TCPProxyStateMachine.Action.none)
        #expect(machine.state == .closed)
    }

    @Test func downstreamLeavingDuringConnectAbandonsTheUpstream() {
        var machine = TCPProxyStateMachine(maxConnectAttempts: 1)
        _ = machine.downstreamActive()
        _ = machine.channelInactive(.downstream)
        #expect(machine.connectSucceeded() == .closeUpstream)
        #expect(machine.connectFailed() == TCPProxyStateMachine.Action.none)
    }

    @Test func timeoutClosesBothOnce() {
        var machine = TCPProxyStateMachine(maxConnectAttempts: 1)
        _ = machine.downstreamActive()
        _ = machine.connectSucceeded()
        #expect(machine.timedOut() == .closeBoth)
        #expect(machine.timedOut() == TCPProxyStateMachine.Action.none)
    }
}
