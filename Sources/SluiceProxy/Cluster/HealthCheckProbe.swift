import Foundation
import NIOConcurrencyHelpers
import NIOCore
import SluiceModel

/// One health-check exchange on a fresh connection: writes the request (an HTTP/1.1 GET or
/// the TCP payload) and completes `promise` with the verdict once the answer decides it.
/// Channels are in manual-read mode (the socket factory's relay options), so it asks for reads.
final class HealthCheckProbeHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Probe {
        case http(request: [UInt8], expected: [Range<Int>])
        case tcp(send: [UInt8], receive: [[UInt8]])
    }

    private let probe: Probe
    private let completion: HealthCheckCompletion
    private var received: [UInt8] = []
    private var done = false

    init(probe: Probe, completion: HealthCheckCompletion) {
        self.probe = probe
        self.completion = completion
    }

    func channelActive(context: ChannelHandlerContext) {
        let bytes: [UInt8]
        switch probe {
        case .http(let request, _): bytes = request
        case .tcp(let send, let receive):
            if send.isEmpty, receive.isEmpty {
                finish(.success, context: context)
                return
            }
            bytes = send
        }
        if !bytes.isEmpty {
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
        }
        if case .tcp(_, let receive) = probe, receive.isEmpty {
            finish(.success, context: context)
            return
        }
        context.read()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        received.append(contentsOf: buffer.readableBytesView)
        switch probe {
        case .http(_, let expected):
            if let status = Self.statusCode(in: received) {
                finish(expected.contains { $0.contains(status) } ? .success : .activeFailure, context: context)
            } else if received.count > 64 * 1024 {
                finish(.activeFailure, context: context)
            }
        case .tcp(_, let receive):
            // Each block must appear, in order, not necessarily adjacent (Envoy's fuzzy match).
            if Self.containsInOrder(received, receive) { finish(.success, context: context) }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if !done { context.read() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(.networkFailure, context: context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish(.networkFailure, context: context)
    }

    private func finish(_ result: HealthCheckResult, context: ChannelHandlerContext) {
        guard !done else { return }
        done = true
        completion.complete(result)
        context.close(promise: nil)
    }

    /// The status of a complete HTTP/1.x status line, or nil while it is incomplete.
    static func statusCode(in bytes: [UInt8]) -> Int? {
        guard let end = bytes.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let line = String(decoding: bytes[..<end], as: UTF8.self)
        let parts = line.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let status = Int(parts[1]) else { return -1 }
        return status
    }

    static func containsInOrder(_ haystack: [UInt8], _ needles: [[UInt8]]) -> Bool {
        var start = 0
        for needle in needles where !needle.isEmpty {
            guard needle.count <= haystack.count - start else { return false }
            var found: Int?
            var index = start
            while index + needle.count <= haystack.count {
                if haystack[index..<(index + needle.count)].elementsEqual(needle) {
                    found = index
                    break
                }
                index += 1
            }
            guard let position = found else { return false }
            start = position + needle.count
        }
        return true
    }

    /// The HTTP/1.1 request of an HTTP health check.
    static func httpRequest(_ check: HTTPHealthCheck, clusterName: String) -> [UInt8] {
        let host = check.host.isEmpty ? clusterName : check.host
        var headers: [(String, String)] = [("host", host), ("user-agent", "Envoy/HC"), ("connection", "close")]
        headers.removeAll { name, _ in check.requestHeadersToRemove.contains(name) && name != "host" }
        for header in check.headers {
            if !header.append { headers.removeAll { $0.0 == header.name } }
            headers.append((header.name, header.value))
        }
        var text = "GET \(check.path) HTTP/1.1\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        return Array(text.utf8)
    }
}

/// Completes a check's promise once, whichever of answer, close, connect failure or timeout
/// comes first.
final class HealthCheckCompletion: Sendable {
    private let promise: EventLoopPromise<HealthCheckResult>
    private let completed = NIOLockedValueBox(false)

    init(promise: EventLoopPromise<HealthCheckResult>) {
        self.promise = promise
    }

    var futureResult: EventLoopFuture<HealthCheckResult> { promise.futureResult }

    func complete(_ result: HealthCheckResult) {
        let first = completed.withLockedValue { done in
            defer { done = true }
            return !done
        }
        if first { promise.succeed(result) }
    }
}
