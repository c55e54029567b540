import SluiceModel
import SluiceXDSTypes
import SwiftProtobuf

/// How this proxy reaches its xDS management server, from the bootstrap's `dynamic_resources`.
public struct XDSConfiguration: Sendable {
    /// State-of-the-world or incremental ADS.
    public enum WireProtocol: String, Sendable {
        case stateOfTheWorld = "GRPC"
        case delta = "DELTA_GRPC"
    }

    /// Where the management server listens (the endpoint of the `envoy_grpc` cluster).
    public enum ServerAddress: Sendable, Equatable, CustomStringConvertible {
        case tcp(SocketEndpoint)
        case unixSocket(String)

        public var description: String {
            switch self {
            case .tcp(let endpoint): return endpoint.description
            case .unixSocket(let path): return "unix:\(path)"
            }
        }
    }

    public var wireProtocol: WireProtocol
    public var server: ServerAddress
    public var clusterName: String
    /// The node as it goes on the wire (bootstrap `node` plus this client's user agent).
    public var node: Envoy_Config_Core_V3_Node
    public var setNodeOnFirstMessageOnly: Bool
    /// Listeners come over ADS.
    public var listenersViaADS: Bool
    /// Clusters come over ADS.
    public var clustersViaADS: Bool
    /// How long a warming resource waits for what it depends on; nil waits forever (`0s`).
    public var initialFetchTimeout: Duration?
    /// Reconnect backoff: first delay and cap (jittered, doubling), from `envoy_grpc.retry_policy`
    /// or Envoy's defaults (500 ms, 30 s).
    public var backoffBase: Duration = .milliseconds(500)
    public var backoffMax: Duration = .seconds(30)
}

extension TranslationContext {
    /// The xDS set-up of a bootstrap with `dynamic_resources`, or nil when it has none.
    mutating func xds(_ bootstrap: Envoy_Config_Bootstrap_V3_Bootstrap) -> XDSConfiguration? {
        guard bootstrap.hasDynamicResources else { return nil }
        let dynamic = bootstrap.dynamicResources
        let path = "dynamic_resources"
        guard dynamic.hasAdsConfig else {
            if dynamic.hasLdsConfig || dynamic.hasCdsConfig {
                unsupported(path, "lds_config/cds_config need ads_config: only aggregated (ADS) gRPC is supported",
                            feature: "DynamicResources without ads_config")
            }
            return nil
        }
        let ads = dynamic.adsConfig
        let adsPath = child(path, "ads_config")
        let wire: XDSConfiguration.WireProtocol
        switch ads.apiType {
        case .grpc: wire = .stateOfTheWorld
        case .deltaGrpc: wire = .delta
        default:
            unsupported(child(adsPath, "api_type"), "api_type \(ads.apiType) is not supported (use GRPC or DELTA_GRPC)",
                        feature: "ApiConfigSource.api_type=\(ads.apiType)")
            return nil
        }
        guard ads.grpcServices.count == 1, case .envoyGrpc(let envoyGrpc)? = ads.grpcServices[0].targetSpecifier else {
            invalid(child(adsPath, "grpc_services"), "exactly one grpc_services entry with envoy_grpc is required")
            return nil
        }
        let clusterName = envoyGrpc.clusterName
        guard let server = xdsServer(clusterName, in: bootstrap, path: "\(adsPath).grpc_services[0].envoy_grpc.cluster_name") else {
            return nil
        }

        var timeout: Duration? = .seconds(15)
        var listenersViaADS = false
        var clustersViaADS = false
        for (name, present, source) in [
            ("lds_config", dynamic.hasLdsConfig, dynamic.ldsConfig), ("cds_config", dynamic.hasCdsConfig, dynamic.cdsConfig),
        ] where present {
            guard case .ads? = source.configSourceSpecifier else {
                unsupported(child(path, name), "only { ads: {} } config sources are supported", feature: "ConfigSource (non-ADS)")
                continue
            }
            if name == "lds_config" { listenersViaADS = true } else { clustersViaADS = true }
            if source.hasInitialFetchTimeout {
                timeout = source.initialFetchTimeout.isPositive ? source.initialFetchTimeout.swiftDuration : nil
            }
        }
        var node = bootstrap.node
        node.userAgentName = "sluice"
        node.userAgentVersion = SluiceVersion.current
        var result = XDSConfiguration(
            wireProtocol: wire, server: server, clusterName: clusterName, node: node,
            setNodeOnFirstMessageOnly: ads.setNodeOnFirstMessageOnly, listenersViaADS: listenersViaADS,
            clustersViaADS: clustersViaADS, initialFetchTimeout: timeout)
        let backoff = envoyGrpc.retryPolicy.retryBackOff
        if envoyGrpc.hasRetryPolicy, envoyGrpc.retryPolicy.hasRetryBackOff {
            let backoffPath = "\(adsPath).grpc_services[0].envoy_grpc.retry_policy.retry_back_off"
            if backoff.hasBaseInterval {
                guard backoff.baseInterval.isPositive else {
                    invalid(child(backoffPath, "base_interval"), "must be a positive duration")
                    return nil
                }
                result.backoffBase = backoff.baseInterval.swiftDuration
                result.backoffMax = result.backoffBase * 10
            }
            if backoff.hasMaxInterval {
                guard backoff.maxInterval.swiftDuration >= result.backoffBase else {
                    invalid(child(backoffPath, "max_interval"), "must not be shorter than base_interval")
                    return nil
                }
                result.backoffMax = backoff.maxInterval.swiftDuration
            }
        }
        return result
    }

    /// The first endpoint of the static cluster the management server is reached through.
    private mutating func xdsServer(
        _ clusterName: String, in bootstrap: Envoy_Config_Bootstrap_V3_Bootstrap, path: String
    ) -> XDSConfiguration.ServerAddress? {
        guard let cluster = bootstrap.staticResources.clusters.first(where: { $0.name == clusterName }) else {
            invalid(path, "no static cluster named \"\(clusterName)\"")
            return nil
        }
        let endpoint = cluster.loadAssignment.endpoints.first?.lbEndpoints.first?.endpoint.address
        switch endpoint?.address {
        case .socketAddress(let socket)?:
            guard let address = IPAddress(socket.address), case .portValue(let port)? = socket.portSpecifier,
                  let fitting = UInt16(exactly: port)
            else {
                unsupported(path, "the xDS cluster \"\(clusterName)\" needs an IP address and port")
                return nil
            }
            return .tcp(SocketEndpoint(address: address, port: fitting))
        case .pipe(let pipe)?:
            return .unixSocket(pipe.path)
        default:
            invalid(path, "the xDS cluster \"\(clusterName)\" has no endpoint")
            return nil
        }
    }
}

/// This build's version, as it announces itself to control planes.
public enum SluiceVersion {
    public static let current = "0.1.0"
}

extension XDSConfiguration {
    /// Istio's sidecar node id, which istiod reads the proxy's identity from.
    public static let istioNodeIDTemplate = "sidecar~{ip}~{name}.{namespace}~{namespace}.svc.cluster.local"

    /// The same management server, speaking for one workload: the node id comes from `template`
    /// ({ip}, {ips}, {name}, {namespace}, {id}, {serviceAccount}) and the metadata gains the
    /// fields Istio derives a proxy's configuration from (NAME, NAMESPACE, INSTANCE_IPS,
    /// SERVICE_ACCOUNT). Each workload thus gets its own configuration from an unmodified
    /// control plane, as its own sidecar would.
    public func forWorkload(_ workload: WorkloadIdentity, nodeIDTemplate template: String) -> XDSConfiguration {
        var copy = self
        let ip = workload.addresses.first ?? ""
        let replacements = [
            "{ip}": ip, "{ips}": workload.addresses.joined(separator: ","), "{name}": workload.name,
            "{namespace}": workload.namespace, "{id}": workload.id, "{serviceAccount}": workload.serviceAccount,
        ]
        var id = template
        for (placeholder, value) in replacements { id = id.replacingOccurrences(of: placeholder, with: value) }
        copy.node.id = id
        func string(_ value: String) -> Google_Protobuf_Value {
            var result = Google_Protobuf_Value()
            result.stringValue = value
            return result
        }
        copy.node.metadata.fields["NAME"] = string(workload.name)
        copy.node.metadata.fields["NAMESPACE"] = string(workload.namespace)
        copy.node.metadata.fields["INSTANCE_IPS"] = string(workload.addresses.joined(separator: ","))
        copy.node.metadata.fields["SERVICE_ACCOUNT"] = string(workload.serviceAccount)
        copy.node.metadata.fields["SLUICE_WORKLOAD"] = string(workload.id)
        return copy
    }
}
