/// Default ports and mark shared by the agent's capture rules and the proxy.
public enum CaptureDefaults {
    public static let outboundPort: UInt16 = 15001
    public static let inboundPort: UInt16 = 15006
    /// Every proxy socket carries this mark; capture rules let marked packets pass.
    public static let proxyMark: UInt32 = 0x539
    /// Bits of the mark the rules compare.
    public static let markMask: UInt32 = 0xfff
    /// tproxy mode: the policy-routing mark (outside `markMask`) that sends packets of
    /// transparent connections to the local route table.
    public static let transparentMark: UInt32 = 0x1000
    /// tproxy mode: the route table holding the "everything is local" route.
    public static let transparentRouteTable = 133
}

/// How captured inbound connections reach the proxy, which decides how it connects on to the
/// application.
public enum InboundDelivery: String, Hashable, Sendable, Codable {
    /// NAT redirect: the application sees the proxy connect from the workload's own address.
    case redirected
    /// TPROXY: the inbound listener is transparent and the proxy connects to the application
    /// from the client's own address, so the application sees the real client.
    case transparent
}

/// What the agent tells the proxy about an enrolled workload.
public struct WorkloadIdentity: Hashable, Sendable, Codable {
    /// Unique key, by default the namespace name.
    public var id: String
    public var name: String
    public var namespace: String
    public var serviceAccount: String
    /// The workload's own addresses (what a control plane knows it by).
    public var addresses: [String]

    public init(
        id: String, name: String? = nil, namespace: String = "default", serviceAccount: String = "default",
        addresses: [String] = []
    ) {
        self.id = id
        self.name = name ?? id
        self.namespace = namespace
        self.serviceAccount = serviceAccount
        self.addresses = addresses
    }

    private enum CodingKeys: String, CodingKey {
        case id, name, namespace, serviceAccount, addresses
    }

    /// State written before `addresses` existed still decodes.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        name = try container.decode(String.self, forKey: .name)
        namespace = try container.decode(String.self, forKey: .namespace)
        serviceAccount = try container.decode(String.self, forKey: .serviceAccount)
        addresses = try container.decodeIfPresent([String].self, forKey: .addresses) ?? []
    }
}

/// Interception mechanisms an operator can pick per workload.
public enum CaptureModeName: String, Hashable, Sendable, Codable, CaseIterable {
    case iptables
    case nftables
    case tproxy
    case none
    /// IPVS virtual services for an explicit list of service addresses (`CaptureOptions.services`).
    case ipvs
    /// cgroup connect/sockops/sk_msg/getsockopt programs plus tc ingress (bpf/).
    case ebpf

    /// How this mode delivers inbound connections to the proxy.
    public var inboundDelivery: InboundDelivery { self == .tproxy ? .transparent : .redirected }
}

/// Per-workload capture settings.
public struct CaptureOptions: Hashable, Sendable, Codable {
    /// TCP destination ports never captured, outbound or inbound.
    public var excludePorts: [UInt16]
    /// Outbound destination ranges never captured.
    public var excludeCIDRs: [CIDRRange]
    public var outboundPort: UInt16
    public var inboundPort: UInt16
    /// Service addresses (VIP:port) captured by modes that cannot capture everything (IPVS);
    /// the wildcard modes ignore it.
    public var services: [SocketEndpoint]
    /// The workload's cgroup v2 directory (eBPF mode); nil: the agent creates one.
    public var cgroup: String?

    public init(
        excludePorts: [UInt16] = [],
        excludeCIDRs: [CIDRRange] = [],
        outboundPort: UInt16 = CaptureDefaults.outboundPort,
        inboundPort: UInt16 = CaptureDefaults.inboundPort,
        services: [SocketEndpoint] = [],
        cgroup: String? = nil
    ) {
        self.excludePorts = excludePorts
        self.excludeCIDRs = excludeCIDRs
        self.outboundPort = outboundPort
        self.inboundPort = inboundPort
        self.services = services
        self.cgroup = cgroup
    }

    private enum CodingKeys: String, CodingKey {
        case excludePorts, excludeCIDRs, outboundPort, inboundPort, services, cgroup
    }

    /// State written before `services` existed still decodes.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        excludePorts = try container.decode([UInt16].self, forKey: .excludePorts)
        excludeCIDRs = try container.decode([CIDRRange].self, forKey: .excludeCIDRs)
        outboundPort = try container.decode(UInt16.self, forKey: .outboundPort)
        inboundPort = try container.decode(UInt16.self, forKey: .inboundPort)
        services = try container.decodeIfPresent([SocketEndpoint].self, forKey: .services) ?? []
        cgroup = try container.decodeIfPresent(String.self, forKey: .cgroup)
    }
}
