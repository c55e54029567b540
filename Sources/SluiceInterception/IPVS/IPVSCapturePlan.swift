import SluiceModel

/// The IPVS virtual services that capture one workload's outbound traffic: each listed service
/// address becomes a TCP virtual service with one masquerading destination, the proxy's
/// outbound listener on loopback. IPVS matches exact VIP:port pairs only, so the plan is an
/// allow-list; there is no catch-all.
public struct IPVSCapturePlan: Sendable, Equatable {
    /// Service → destination (the proxy's outbound listener), in the order given.
    public var services: [(service: SocketEndpoint, destination: SocketEndpoint)]

    /// Builds the plan, dropping services that are excluded by port or CIDR and those of a
    /// disabled address family. Throws naming a service IPVS cannot or must not capture.
    public init(options: CaptureOptions, ipv6Enabled: Bool = true) throws {
        var seen = Set<SocketEndpoint>()
        services = []
        for service in options.services {
            if service.address.isLoopback || service.address.isUnspecified || service.address.unmappingIPv4 != service.address {
                throw IPVSPlanError("service \(service): IPVS cannot capture loopback, unspecified or IPv4-mapped addresses")
            }
            if service.port == 0 { throw IPVSPlanError("service \(service): port 0 is not a service port") }
            if service.port == options.outboundPort || service.port == options.inboundPort {
                throw IPVSPlanError("service \(service): port \(service.port) is the proxy's own listener port")
            }
            if options.excludePorts.contains(service.port) { continue }
            if options.excludeCIDRs.contains(where: { $0.contains(service.address) }) { continue }
            if !service.address.isV4 && !ipv6Enabled { continue }
            guard seen.insert(service).inserted else { continue }
            services.append((service, Self.destination(for: service, options: options)))
        }
    }

    /// The service addresses, which must route locally in the namespace.
    public var routedAddresses: Set<IPAddress> { Set(services.map(\.service.address)) }

    /// Loopback is allowed as a destination only because IPVS sees these connections at
    /// LOCAL_OUT (locally originated); it refuses to DNAT input-routed packets to loopback.
    static func destination(for service: SocketEndpoint, options: CaptureOptions) -> SocketEndpoint {
        SocketEndpoint(address: service.address.isV4 ? .v4(0x7f00_0001) : .v6(high: 0, low: 1), port: options.outboundPort)
    }

    /// Whether a service found in the kernel is one this mode installed: it forwards only to
    /// the proxy's outbound listener on loopback.
    static func isCaptureService(destinations: [SocketEndpoint], options: CaptureOptions) -> Bool {
        !destinations.isEmpty && destinations.allSatisfy { $0.port == options.outboundPort && $0.address.isLoopback }
    }

    public static func == (lhs: IPVSCapturePlan, rhs: IPVSCapturePlan) -> Bool {
        lhs.services.map(\.service) == rhs.services.map(\.service)
            && lhs.services.map(\.destination) == rhs.services.map(\.destination)
    }
}

/// A service list the IPVS mode cannot install, naming the service.
public struct IPVSPlanError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
