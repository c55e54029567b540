import SluiceModel

/// The IPVS virtual services that capture one workload's outbound traffic: each service address
/// (listed, or routed by the proxy's configuration) becomes a TCP virtual service with one masquerading destination, the proxy's
/// outbound listener on loopback. IPVS matches exact VIP:port pairs only, so the plan is an
/// allow-list; there is no catch-all.
public struct IPVSCapturePlan: Sendable, Equatable {
    /// Service → destination (the proxy's outbound listener), in the order given.
    public var services: [(service: SocketEndpoint, destination: SocketEndpoint)]

    /// Builds the plan from `options.services` followed by `proxyServiceAddresses`, dropping
    /// services that are excluded by port or CIDR and those of a disabled address family.
    /// Throws naming a listed service IPVS cannot or must not capture; such an address from the
    /// proxy's configuration is skipped instead (it is the proxy's business, not the operator's
    /// input, and the other services still need capture).
    public init(options: CaptureOptions, proxyServiceAddresses: [SocketEndpoint] = [], ipv6Enabled: Bool = true) throws {
        var seen = Set<SocketEndpoint>()
        services = []
        let listed = options.services.map { ($0, true) }, known = proxyServiceAddresses.map { ($0, false) }
        for (service, isListed) in listed + known {
            if let problem = Self.problem(with: service, options: options) {
                if isListed { throw IPVSPlanError("service \(service): \(problem)") }
                continue
            }
            if options.excludePorts.contains(service.port) { continue }
            if options.excludeCIDRs.contains(where: { $0.contains(service.address) }) { continue }
            if !service.address.isV4 && !ipv6Enabled { continue }
            guard seen.insert(service).inserted else { continue }
            services.append((service, Self.destination(for: service, options: options)))
        }
    }

    /// Why IPVS cannot or must not capture `service`, nil when it can.
    private static func problem(with service: SocketEndpoint, options: CaptureOptions) -> String? {
        if service.address.isLoopback || service.address.isUnspecified || service.address.unmappingIPv4 != service.address {
            return "IPVS cannot capture loopback, unspecified or IPv4-mapped addresses"
        }
        if service.port == 0 { return "port 0 is not a service port" }
        if service.port == options.outboundPort || service.port == options.inboundPort {
            return "port \(service.port) is the proxy's own listener port"
        }
        return nil
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
