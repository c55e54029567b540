/// The xDS resource types Sluice subscribes to.
public enum XDSResourceType: String, CaseIterable, Sendable, Comparable {
    case cluster = "envoy.config.cluster.v3.Cluster"
    case endpoint = "envoy.config.endpoint.v3.ClusterLoadAssignment"
    case listener = "envoy.config.listener.v3.Listener"
    case route = "envoy.config.route.v3.RouteConfiguration"

    public var typeURL: String { "type.googleapis.com/\(rawValue)" }

    public init?(typeURL: String) {
        guard let type = XDSResourceType(rawValue: String(typeURL.split(separator: "/").last ?? "")) else { return nil }
        self = type
    }

    /// CDS, EDS, LDS, RDS.
    public var shortName: String {
        switch self {
        case .cluster: return "CDS"
        case .endpoint: return "EDS"
        case .listener: return "LDS"
        case .route: return "RDS"
        }
    }

    /// What Envoy's NACK messages call one of these.
    var noun: String {
        switch self {
        case .cluster: return "cluster"
        case .endpoint: return "cluster load assignment"
        case .listener: return "listener"
        case .route: return "route configuration"
        }
    }

    /// LDS and CDS: every state-of-the-world response is the complete set (absence = deletion)
    /// and clients subscribe to everything (wildcard).
    var isCompleteSet: Bool { self == .cluster || self == .listener }

    public static func < (lhs: XDSResourceType, rhs: XDSResourceType) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}
