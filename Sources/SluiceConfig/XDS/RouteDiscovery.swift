import SluiceModel
import SluiceXDSTypes
import SwiftProtobuf

/// What RDS needs to know about listeners: the route configuration names their HTTP connection
/// managers wait for, and how long each may wait (`rds.config_source.initial_fetch_timeout`).
enum RouteDiscovery {
    /// The RDS names of every HTTP connection manager of a listener, default chain included.
    static func routeNames(of listener: ListenerConfig) -> Set<String> {
        var names: Set<String> = []
        for chain in listener.filterChains + (listener.defaultFilterChain.map { [$0] } ?? []) {
            for case .httpConnectionManager(let manager) in chain.filters {
                if let name = manager.rdsName { names.insert(name) }
            }
        }
        return names
    }

    /// `initial_fetch_timeout` per RDS name of a raw listener: Envoy's default is 15 s; `0s`
    /// (Istio's choice) waits forever, given as nil. With several, the shortest wins.
    static func fetchTimeouts(of any: Google_Protobuf_Any) -> [String: Duration?] {
        guard let listener = try? Envoy_Config_Listener_V3_Listener(unpackingAny: any) else { return [:] }
        var result: [String: Duration?] = [:]
        let chains = listener.filterChains + (listener.hasDefaultFilterChain ? [listener.defaultFilterChain] : [])
        for chain in chains {
            for filter in chain.filters {
                guard case .typedConfig(let config)? = filter.configType,
                      let manager = try? Envoy_Extensions_Filters_Network_HttpConnectionManager_V3_HttpConnectionManager(unpackingAny: config),
                      case .rds(let rds)? = manager.routeSpecifier
                else { continue }
                let source = rds.configSource
                let timeout: Duration? = source.hasInitialFetchTimeout
                    ? (source.initialFetchTimeout.isPositive ? source.initialFetchTimeout.swiftDuration : nil) : .seconds(15)
                if let existing = result[rds.routeConfigName] {
                    switch (existing, timeout) {
                    case (nil, _): result[rds.routeConfigName] = timeout
                    case (let old?, let new?): result[rds.routeConfigName] = min(old, new)
                    case (_?, nil): break
                    }
                } else {
                    result[rds.routeConfigName] = timeout
                }
            }
        }
        return result
    }
}
