import Foundation
import NIOCore
import NIOPosix
@testable import SluiceProxy

/// A loopback TCP server for relay tests: echoes, or streams a fixed number of bytes, or reads
/// to EOF and answers with the byte count.
final class TestServer: @unchecked Sendable {
    enum Behaviour: Sendable {
        case echo
        /// Send `count` bytes, then close.
        case stream(count: Int)
        /// Read to EOF, then reply "<n>\n" and close.
        case countThenReply
    }

    let channel: any Channel
    let group: MultiThreadedEventLoopGroup

    init(_ behaviour: Behaviour) throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        channel = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Handler(behaviour))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    var port: Int { channel.localAddress!.port! }

    func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let behaviour: Behaviour
        var received = 0

        init(_ behaviour: Behaviour) { self.behaviour = behaviour }

        func channelActive(context: ChannelHandlerContext) {
            guard case .stream(let count) = behaviour else { return }
            var remaining = count
            let chunk = ByteBuffer(repeating: 0x5a, count: 64 * 1024)
            while remaining > 0 {
                let size = min(remaining, chunk.readableBytes)
                context.write(wrapOutboundOut(chunk.getSlice(at: 0, length: size)!), promise: nil)
                remaining -= size
            }
            context.writeAndFlush(wrapOutboundOut(ByteBuffer())).whenComplete { _ in context.close(promise: nil) }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            received += buffer.readableBytes
            if case .echo = behaviour { context.writeAndFlush(data, promise: nil) }
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            guard case ChannelEvent.inputClosed = event else { return }
            switch behaviour {
            case .countThenReply:
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "\(received)\n"))).whenComplete { _ in
                    context.close(promise: nil)
                }
            default:
                context.close(promise: nil)
            }
        }
    }
}

/// A blocking loopback client for relay tests.
final class TestClient: @unchecked Sendable {
    let fd: Int32

    init(port: Int, timeout: Int = 10) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var time = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw TestError("connect failed: \(errno)") }
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { throw TestError("send failed: \(errno)") }
            offset += sent
        }
    }

    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Reads until EOF; throws on timeout or reset.
    func readToEnd() throws -> [UInt8] {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count == 0 { return result }
            guard count > 0 else { throw TestError("recv failed: \(errno)") }
            result += buffer[0..<count]
        }
    }

    /// Reads what is available (at least one byte), up to `limit`; empty at end of stream.
    func readSome(_ limit: Int) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: limit)
        let received = recv(fd, &buffer, limit, 0)
        guard received >= 0 else { throw TestError("recv failed: \(errno)") }
        return Array(buffer[0..<received])
    }

    /// Reads exactly `count` bytes.
    func read(_ count: Int) throws -> [UInt8] {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while result.count < count {
            let received = recv(fd, &buffer, min(buffer.count, count - result.count), 0)
            guard received > 0 else { throw TestError("recv ended after \(result.count) bytes: \(errno)") }
            result += buffer[0..<received]
        }
        return result
    }
}

struct TestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A stat's current value by its Envoy name (counter or gauge), nil when it does not exist.
func stat(_ server: ProxyServer, _ name: String) -> Int64? {
    for entry in server.stats.snapshot() where entry.name.description == name {
        switch entry.value {
        case .counter(let value): return Int64(value)
        case .gauge(let value): return value
        }
    }
    return nil
}
