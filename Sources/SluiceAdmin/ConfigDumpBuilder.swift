import Foundation
import SluiceXDSTypes
import SwiftProtobuf

/// `/config_dump`: Envoy's `ConfigDump` built from the loaded bootstrap with the generated types.
/// Every listener and cluster is static today (no xDS yet), so the dynamic lists stay empty.
enum ConfigDumpBuilder {
    /// Why a `resource=` request cannot be answered, with Envoy's status and wording.
    struct Failure: Error {
        var status: Int
        var message: String
    }

    static func full(bootstrap: Envoy_Config_Bootstrap_V3_Bootstrap, loadedAt: Date) throws -> Envoy_Admin_V3_ConfigDump {
        let updated = Google_Protobuf_Timestamp(date: loadedAt)
        var bootstrapDump = Envoy_Admin_V3_BootstrapConfigDump()
        bootstrapDump.bootstrap = bootstrap
        bootstrapDump.lastUpdated = updated
        var dump = Envoy_Admin_V3_ConfigDump()
        // Envoy's order: bootstrap, clusters, listeners (then routes and secrets, which Sluice lacks).
        dump.configs = [
            try Google_Protobuf_Any(message: bootstrapDump),
            try Google_Protobuf_Any(message: clusters(bootstrap, updated)),
            try Google_Protobuf_Any(message: listeners(bootstrap, updated)),
        ]
        return dump
    }

    /// `?resource=<field>`: every element of that repeated field, each packed on its own, as Envoy.
    static func resource(
        _ name: String, bootstrap: Envoy_Config_Bootstrap_V3_Bootstrap, loadedAt: Date
    ) throws -> Result<Envoy_Admin_V3_ConfigDump, Failure> {
        let updated = Google_Protobuf_Timestamp(date: loadedAt)
        var dump = Envoy_Admin_V3_ConfigDump()
        switch name {
        case "static_clusters":
            dump.configs = try clusters(bootstrap, updated).staticClusters.map { try Google_Protobuf_Any(message: $0) }
        case "static_listeners":
            dump.configs = try listeners(bootstrap, updated).staticListeners.map { try Google_Protobuf_Any(message: $0) }
        case "dynamic_active_clusters", "dynamic_warming_clusters", "dynamic_listeners":
            break
        case "bootstrap", "last_updated", "version_info":
            return .failure(Failure(
                status: 400, message: "\(name) is not a repeated field. Use ?mask=\(name) to get only this field"))
        default:
            return .failure(Failure(status: 404, message: "\(name) not found in config dump"))
        }
        return .success(dump)
    }

    static func clusters(
        _ bootstrap: Envoy_Config_Bootstrap_V3_Bootstrap, _ updated: Google_Protobuf_Timestamp
    ) throws -> Envoy_Admin_V3_ClustersConfigDump {
        var dump = Envoy_Admin_V3_ClustersConfigDump()
        dump.versionInfo = ""
        dump.staticClusters = try bootstrap.staticResources.clusters.map { cluster in
            var entry = Envoy_Admin_V3_ClustersConfigDump.StaticCluster()
            entry.cluster = try Google_Protobuf_Any(message: cluster)
            entry.lastUpdated = updated
            return entry
        }
        return dump
    }

    static func listeners(
        _ bootstrap: Envoy_Config_Bootstrap_V3_Bootstrap, _ updated: Google_Protobuf_Timestamp
    ) throws -> Envoy_Admin_V3_ListenersConfigDump {
        var dump = Envoy_Admin_V3_ListenersConfigDump()
        dump.staticListeners = try bootstrap.staticResources.listeners.map { listener in
            var entry = Envoy_Admin_V3_ListenersConfigDump.StaticListener()
            entry.listener = try Google_Protobuf_Any(message: listener)
            entry.lastUpdated = updated
            return entry
        }
        return dump
    }
}
