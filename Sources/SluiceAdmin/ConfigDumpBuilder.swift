import Foundation
import SluiceConfig
import SluiceXDSTypes
import SwiftProtobuf

/// `/config_dump`: Envoy's `ConfigDump` built with the generated admin types, from the loaded
/// bootstrap (static sections) and what xDS delivered (dynamic sections, with each resource's
/// `version_info` and `last_updated`).
enum ConfigDumpBuilder {
    /// What the dump is made of.
    struct Source {
        var bootstrap: Envoy_Config_Bootstrap_V3_Bootstrap
        var loadedAt: Date
        var xds: XDSDump?
        /// `?include_eds`: Envoy leaves endpoints out unless asked.
        var includeEndpoints: Bool
    }

    /// Why a `resource=` request cannot be answered, with Envoy's status and wording.
    struct Failure: Error {
        var status: Int
        var message: String
    }

    static func full(_ source: Source) throws -> Envoy_Admin_V3_ConfigDump {
        var bootstrapDump = Envoy_Admin_V3_BootstrapConfigDump()
        bootstrapDump.bootstrap = source.bootstrap
        bootstrapDump.lastUpdated = Google_Protobuf_Timestamp(date: source.loadedAt)
        var dump = Envoy_Admin_V3_ConfigDump()
        // Envoy's order: bootstrap, clusters, endpoints (on request), listeners, routes.
        dump.configs = [try Google_Protobuf_Any(message: bootstrapDump), try Google_Protobuf_Any(message: clusters(source))]
        if source.includeEndpoints { dump.configs.append(try Google_Protobuf_Any(message: endpoints(source))) }
        dump.configs.append(try Google_Protobuf_Any(message: listeners(source)))
        let routeDump = try routes(source)
        if source.xds != nil || !routeDump.staticRouteConfigs.isEmpty {
            dump.configs.append(try Google_Protobuf_Any(message: routeDump))
        }
        return dump
    }

    /// `?resource=<field>`: every element of that repeated field, each packed on its own, as Envoy.
    static func resource(_ name: String, _ source: Source) throws -> Result<Envoy_Admin_V3_ConfigDump, Failure> {
        var dump = Envoy_Admin_V3_ConfigDump()
        switch name {
        case "static_clusters":
            dump.configs = try clusters(source).staticClusters.map { try Google_Protobuf_Any(message: $0) }
        case "dynamic_active_clusters":
            dump.configs = try clusters(source).dynamicActiveClusters.map { try Google_Protobuf_Any(message: $0) }
        case "dynamic_warming_clusters":
            dump.configs = try clusters(source).dynamicWarmingClusters.map { try Google_Protobuf_Any(message: $0) }
        case "static_listeners":
            dump.configs = try listeners(source).staticListeners.map { try Google_Protobuf_Any(message: $0) }
        case "dynamic_listeners":
            dump.configs = try listeners(source).dynamicListeners.map { try Google_Protobuf_Any(message: $0) }
        case "dynamic_endpoint_configs":
            dump.configs = try endpoints(source).dynamicEndpointConfigs.map { try Google_Protobuf_Any(message: $0) }
        case "static_route_configs":
            dump.configs = try routes(source).staticRouteConfigs.map { try Google_Protobuf_Any(message: $0) }
        case "dynamic_route_configs":
            dump.configs = try routes(source).dynamicRouteConfigs.map { try Google_Protobuf_Any(message: $0) }
        case "bootstrap", "last_updated", "version_info":
            return .failure(Failure(
                status: 400, message: "\(name) is not a repeated field. Use ?mask=\(name) to get only this field"))
        default:
            return .failure(Failure(status: 404, message: "\(name) not found in config dump"))
        }
        return .success(dump)
    }

    static func clusters(_ source: Source) throws -> Envoy_Admin_V3_ClustersConfigDump {
        let loaded = Google_Protobuf_Timestamp(date: source.loadedAt)
        var dump = Envoy_Admin_V3_ClustersConfigDump()
        dump.versionInfo = source.xds?.versions[.cluster] ?? ""
        dump.staticClusters = try source.bootstrap.staticResources.clusters.map { cluster in
            var entry = Envoy_Admin_V3_ClustersConfigDump.StaticCluster()
            entry.cluster = try Google_Protobuf_Any(message: cluster)
            entry.lastUpdated = loaded
            return entry
        }
        let warming = source.xds?.warmingClusters ?? []
        for record in records(source, .cluster) {
            var entry = Envoy_Admin_V3_ClustersConfigDump.DynamicCluster()
            entry.versionInfo = record.version
            entry.cluster = record.any
            entry.lastUpdated = Google_Protobuf_Timestamp(date: record.lastUpdated)
            if warming.contains(record.name) {
                dump.dynamicWarmingClusters.append(entry)
            } else {
                dump.dynamicActiveClusters.append(entry)
            }
        }
        return dump
    }

    static func endpoints(_ source: Source) throws -> Envoy_Admin_V3_EndpointsConfigDump {
        var dump = Envoy_Admin_V3_EndpointsConfigDump()
        dump.dynamicEndpointConfigs = records(source, .endpoint).map { record in
            var entry = Envoy_Admin_V3_EndpointsConfigDump.DynamicEndpointConfig()
            entry.versionInfo = record.version
            entry.endpointConfig = record.any
            entry.lastUpdated = Google_Protobuf_Timestamp(date: record.lastUpdated)
            return entry
        }
        return dump
    }

    static func listeners(_ source: Source) throws -> Envoy_Admin_V3_ListenersConfigDump {
        let loaded = Google_Protobuf_Timestamp(date: source.loadedAt)
        var dump = Envoy_Admin_V3_ListenersConfigDump()
        dump.versionInfo = source.xds?.versions[.listener] ?? ""
        dump.staticListeners = try source.bootstrap.staticResources.listeners.map { listener in
            var entry = Envoy_Admin_V3_ListenersConfigDump.StaticListener()
            entry.listener = try Google_Protobuf_Any(message: listener)
            entry.lastUpdated = loaded
            return entry
        }
        dump.dynamicListeners = records(source, .listener).map { record in
            var state = Envoy_Admin_V3_ListenersConfigDump.DynamicListenerState()
            state.versionInfo = record.version
            state.listener = record.any
            state.lastUpdated = Google_Protobuf_Timestamp(date: record.lastUpdated)
            var entry = Envoy_Admin_V3_ListenersConfigDump.DynamicListener()
            entry.name = record.name
            // A listener waiting for its RDS route table is shown warming, as Envoy does.
            if source.xds?.warmingListeners.contains(record.name) == true {
                entry.warmingState = state
            } else {
                entry.activeState = state
            }
            return entry
        }
        return dump
    }

    /// Envoy lists route tables given inline in an HTTP connection manager (of a static or an
    /// LDS listener) as `static_route_configs`, and RDS ones as `dynamic_route_configs`.
    static func routes(_ source: Source) throws -> Envoy_Admin_V3_RoutesConfigDump {
        var dump = Envoy_Admin_V3_RoutesConfigDump()
        var inline: [(Envoy_Config_Route_V3_RouteConfiguration, Date)] = []
        for listener in source.bootstrap.staticResources.listeners {
            inline += inlineRouteConfigs(listener).map { ($0, source.loadedAt) }
        }
        for record in records(source, .listener) {
            guard let listener = try? Envoy_Config_Listener_V3_Listener(unpackingAny: record.any) else { continue }
            inline += inlineRouteConfigs(listener).map { ($0, record.lastUpdated) }
        }
        dump.staticRouteConfigs = try inline.map { routes, loaded in
            var entry = Envoy_Admin_V3_RoutesConfigDump.StaticRouteConfig()
            entry.routeConfig = try Google_Protobuf_Any(message: routes)
            entry.lastUpdated = Google_Protobuf_Timestamp(date: loaded)
            return entry
        }
        dump.dynamicRouteConfigs = records(source, .route).map { record in
            var entry = Envoy_Admin_V3_RoutesConfigDump.DynamicRouteConfig()
            entry.versionInfo = record.version
            entry.routeConfig = record.any
            entry.lastUpdated = Google_Protobuf_Timestamp(date: record.lastUpdated)
            return entry
        }
        return dump
    }

    private static func inlineRouteConfigs(_ listener: Envoy_Config_Listener_V3_Listener) -> [Envoy_Config_Route_V3_RouteConfiguration] {
        let chains = listener.filterChains + (listener.hasDefaultFilterChain ? [listener.defaultFilterChain] : [])
        return chains.flatMap(\.filters).compactMap { filter in
            guard case .typedConfig(let config)? = filter.configType,
                  let manager = try? Envoy_Extensions_Filters_Network_HttpConnectionManager_V3_HttpConnectionManager(unpackingAny: config),
                  case .routeConfig(let routes)? = manager.routeSpecifier
            else { return nil }
            return routes
        }
    }

    private static func records(_ source: Source, _ type: XDSResourceType) -> [XDSResourceRecord] {
        (source.xds?.resources[type] ?? [:]).values.sorted { $0.name < $1.name }
    }
}
