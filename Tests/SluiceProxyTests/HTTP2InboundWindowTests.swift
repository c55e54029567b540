@testable import SluiceProxy
import Testing

/// When a downstream HTTP/2 stream or connection gives the client credit back.
@Suite struct HTTP2InboundWindowTests {
    @Test func creditGoesBackOnceHalfTheWindowIsUsed() {
        var window = HTTP2InboundWindow(target: 100)
        #expect(window.reported(60) == nil)
        #expect(window.reported(50) == 50)
        // Until NIO reports again, the increment already sent counts.
        #expect(window.reported(100) == nil)
    }

    @Test func heldBytesAreCreditedOnlyWhenHandedOn() {
        var window = HTTP2InboundWindow(target: 100)
        window.hold(70)
        #expect(window.reported(30) == nil)
        #expect(window.release(30) == nil)
        #expect(window.release(40) == 70)
        #expect(window.held == 0)
    }

    @Test func nothingIsDueBeforeTheFirstReport() {
        var window = HTTP2InboundWindow(target: 100)
        window.hold(80)
        #expect(window.release(80) == nil)
    }
}
