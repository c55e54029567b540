import CSluiceLinux
import Foundation
import NIOCore
import NIOPosix
import SluiceLinux
import SluiceModel

/// Creates the proxy's sockets for one namespace (a workload's, or the proxy's own): listeners
/// bound inside it and upstream connections that leave from it. Every socket carries the proxy
/// mark so capture rules never send the proxy's own traffic back to it.
public struct SocketFactory: Sendable {
    public let namespace: NetworkNamespace
    public let mark: UInt32?
    /// How the workload's capture delivers inbound connections.
    public let inbound: InboundDelivery

    public init(namespace: NetworkNamespace, mark: UInt32? = CaptureDefaults.proxyMark, inbound: InboundDelivery = .redirected) {
        self.namespace = namespace
        self.mark = mark
        self.inbound = inbound
    }

    /// A bound, listening, non-blocking socket for `address`, created inside the namespace;
    /// `transparent` (IP_TRANSPARENT) lets it accept connections TPROXY hands it for any address.
    public func makeListeningSocket(_ address: ListenerAddress, transparent: Bool = false, backlog: Int32 = 1024) throws -> CInt {
        let endpoint = address.endpoint
        return try namespace.perform {
            let family = endpoint.address.isV4 ? AF_INET : AF_INET6
            let fd = sluice_stream_socket(
                family, mark.map { CInt(bitPattern: $0) } ?? -1, 1, address.ipv4Compatible ? 0 : 1, transparent ? 1 : 0)
            guard fd >= 0 else { throw SocketFactoryError.socket(address: endpoint, errno: -fd) }
            let rc = endpoint.withSockaddr { sluice_bind_listen(fd, $0, $1, backlog) }
            guard rc == 0 else {
                close(fd)
                throw SocketFactoryError.bind(address: endpoint, errno: -rc)
            }
            return fd
        }
    }

    /// Connects to `endpoint` from inside the namespace; with `transparentSource`, from that
    /// (non-local) address, as the client of a TPROXY-delivered connection. Only socket
    /// creation needs the namespace; NIO creates the socket synchronously in `connect`, so the
    /// switch is brief. Options are set
    /// synchronously in the initializer (before the connect is issued): per-option futures
    /// would cost allocations on every connection.
    public func connect(
        to endpoint: SocketEndpoint,
        on eventLoop: any EventLoop,
        timeout: TimeAmount,
        mark overridingMark: UInt32? = nil,
        transparentSource: SocketEndpoint? = nil,
        bufferLimit: Int,
        handler: @escaping @Sendable () -> any ChannelHandler
    ) -> EventLoopFuture<any Channel> {
        var markValue = overridingMark ?? self.mark
        var bootstrap = ClientBootstrap(group: eventLoop)
        if let source = transparentSource {
            // The policy-routing mark brings the application's replies (addressed to the
            // client) back to this socket; IP_TRANSPARENT must be set before the bind, which
            // NIO performs before the channel initializer runs.
            markValue = (markValue ?? 0) | CaptureDefaults.transparentMark
            let option = source.address.isV4
                ? ChannelOptions.Types.SocketOption(level: SocketOptionLevel(SOL_IP), name: SocketOptionName(IP_TRANSPARENT))
                : ChannelOptions.Types.SocketOption(level: SocketOptionLevel(SOL_IPV6), name: SocketOptionName(IPV6_TRANSPARENT))
            bootstrap = bootstrap.channelOption(option, value: 1)
                .bind(to: SocketEndpoint(address: source.address, port: 0).nioAddress)
        }
        let mark = markValue.map { SocketOptionValue(Int32(bitPattern: $0)) }
        bootstrap = bootstrap
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let options = channel.syncOptions!
                    // TCP_NODELAY is one of ClientBootstrap's defaults.
                    if let mark { try options.setOption(.socketOption(NIOBSDSocket.Option(rawValue: SO_MARK)), value: mark) }
                    try RelayOptions.apply(to: options, bufferLimit: bufferLimit)
                    try channel.pipeline.syncOperations.addHandler(handler())
                }
            }
        let address = endpoint.nioAddress
        do {
            return try namespace.perform(staying: true) { bootstrap.connect(to: address) }
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
    }
}

/// Socket creation failures, naming the address.
public enum SocketFactoryError: Error, CustomStringConvertible {
    case socket(address: SocketEndpoint, errno: CInt)
    case bind(address: SocketEndpoint, errno: CInt)

    public var description: String {
        switch self {
        case .socket(let address, let code): return "cannot create socket for \(address): \(String(cString: strerror(code)))"
        case .bind(let address, let code): return "cannot listen on \(address): \(String(cString: strerror(code)))"
        }
    }
}

extension SocketEndpoint {
    /// The NIO form of this endpoint.
    public var nioAddress: SocketAddress {
        switch address {
        case .v4(let value):
            var storage = sockaddr_in()
            storage.sin_family = sa_family_t(AF_INET)
            storage.sin_port = port.bigEndian
            storage.sin_addr = in_addr(s_addr: value.bigEndian)
            return SocketAddress(storage, host: "")
        case .v6:
            var storage = sockaddr_in6()
            storage.sin6_family = sa_family_t(AF_INET6)
            storage.sin6_port = port.bigEndian
            storage.sin6_addr = address.in6
            return SocketAddress(storage, host: "")
        }
    }

    /// Builds an endpoint from a NIO address (IPv4-mapped IPv6 addresses become IPv4).
    public init?(_ address: SocketAddress?) {
        switch address {
        case .v4(let v4):
            self.init(address: .v4(UInt32(bigEndian: v4.address.sin_addr.s_addr)), port: UInt16(bigEndian: v4.address.sin_port))
        case .v6(let v6):
            self.init(address: IPAddress(in6: v6.address.sin6_addr).unmappingIPv4, port: UInt16(bigEndian: v6.address.sin6_port))
        default:
            return nil
        }
    }

    func withSockaddr<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        switch nioAddress {
        case .v4(let v4):
            var storage = v4.address
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .v6(let v6):
            var storage = v6.address
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        default:
            preconditionFailure("SocketEndpoint is always IP")
        }
    }
}

/// Channel options both sides of a relayed connection get.
enum RelayOptions {
    /// Reading is manual (backpressure), half-close is forwarded, and pending writes beyond
    /// `bufferLimit` make the channel unwritable. Reads grow adaptively up to 256 KiB (fewer
    /// syscalls for bulk transfers) but never beyond the buffer limit.
    static func apply(to options: any NIOSynchronousChannelOptions, bufferLimit: Int) throws {
        let limit = max(bufferLimit, 1)
        try options.setOption(.autoRead, value: false)
        try options.setOption(.allowRemoteHalfClosure, value: true)
        try options.setOption(.writeBufferWaterMark, value: .init(low: limit / 2, high: limit))
        let maximum = max(min(limit, 256 * 1024), 2048)
        try options.setOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2048, maximum: maximum))
    }
}
