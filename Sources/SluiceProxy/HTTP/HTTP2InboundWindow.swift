/// The receive window of one HTTP/2 stream, or of the connection, kept as NIO's own stream
/// multiplexer keeps it: credit goes back to the peer once the window is down to half its
/// target, and only for bytes already handed on, so a stream whose upstream is full stops
/// its client instead of filling the proxy's memory.
struct HTTP2InboundWindow {
    let target: Int
    /// The window's size as NIO's state machine last reported it (after each DATA frame).
    private var reported: Int?
    /// Bytes received but not handed on yet.
    private(set) var held = 0

    init(target: Int) {
        self.target = target
    }

    /// NIO reported the window's size; returns the increment to send, if one is due.
    mutating func reported(_ size: Int) -> Int? {
        reported = size
        return dueIncrement()
    }

    /// Bytes that arrived but wait before being handed on.
    mutating func hold(_ bytes: Int) {
        held += bytes
    }

    /// Held bytes were handed on (or dropped); returns the increment to send, if one is due.
    mutating func release(_ bytes: Int) -> Int? {
        held -= bytes
        return dueIncrement()
    }

    private mutating func dueIncrement() -> Int? {
        guard let size = reported else { return nil }
        // Held bytes count as not received yet: the peer gets no credit for them.
        let available = size + held
        guard available <= target / 2 else { return nil }
        let increment = target - available
        guard increment > 0 else { return nil }
        // Until NIO reports again, so that the same bytes are not credited twice.
        reported = size + increment
        return increment
    }
}
