import Foundation
@testable import SluiceAdmin
import SluiceConfig
import SluiceXDSTypes
import SwiftProtobuf
import Testing

@Suite struct ConfigDumpTests {
    static let bootstrap = """
        admin:
          address: { socket_address: { address: 127.0.0.1, port_value: 15000 } }
        static_resources:
          listeners:
          - name: outbound
            address: { socket_address: { address: 0.0.0.0, port_value: 15001 } }
            use_original_dst: true
            filter_chains:
            - filters:
              - name: envoy.filters.network.tcp_proxy
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
                  stat_prefix: outbound
                  cluster: passthrough
          clusters:
          - name: passthrough
            type: ORIGINAL_DST
            lb_policy: CLUSTER_PROVIDED
            connect_timeout: 2s
        """

    static let loadedAt = Date(timeIntervalSince1970: 1_700_000_000)

    @Test func fullDumpHasEnvoysSections() throws {
        let loaded = try BootstrapLoader.load(text: Self.bootstrap)
        let json = try AdminProto.json(ConfigDumpBuilder.full(source(loaded)))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let configs = try #require(object["configs"] as? [[String: Any]])
        #expect(configs.map { $0["@type"] as? String } == [
            "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
            "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
            "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
        ])
        #expect(json.contains(#""@type":"type.googleapis.com/envoy.admin.v3.ListenersConfigDump""#))
        #expect(json.contains(#""name":"outbound""#))
        #expect(json.contains(#""stat_prefix":"outbound""#))  // the nested typed_config Any resolves
        #expect(json.contains(#""last_updated":"2023-11-14T22:13:20Z""#))
        let listeners = try #require(configs[2]["static_listeners"] as? [[String: Any]])
        let listener = try #require(listeners.first?["listener"] as? [String: Any])
        #expect(listener["@type"] as? String == "type.googleapis.com/envoy.config.listener.v3.Listener")
    }

    @Test func resourceSelectsOneRepeatedField() throws {
        let loaded = try BootstrapLoader.load(text: Self.bootstrap)
        let dump = try ConfigDumpBuilder.resource("static_clusters", source(loaded)).get()
        let json = try AdminProto.json(dump)
        #expect(json.contains(#""@type":"type.googleapis.com/envoy.admin.v3.ClustersConfigDump.StaticCluster""#))
        #expect(json.contains(#""name":"passthrough""#))
        let missing = try ConfigDumpBuilder.resource("nope", source(loaded))
        guard case .failure(let failure) = missing else {
            Issue.record("expected a failure")
            return
        }
        #expect(failure.status == 404)
        #expect(failure.message == "nope not found in config dump")
    }

    private func source(_ loaded: LoadedBootstrap, xds: XDSDump? = nil) -> ConfigDumpBuilder.Source {
        ConfigDumpBuilder.Source(bootstrap: loaded.bootstrap, loadedAt: Self.loadedAt, xds: xds, includeEndpoints: xds != nil)
    }

    @Test func dynamicResourcesAppearWithTheirVersions() throws {
        let loaded = try BootstrapLoader.load(text: Self.bootstrap)
        var cluster = Envoy_Config_Cluster_V3_Cluster()
        cluster.name = "dynamic-one"
        var dump = XDSDump()
        dump.versions[.cluster] = "v7"
        dump.resources[.cluster] = ["dynamic-one": XDSResourceRecord(
            name: "dynamic-one", version: "v7", any: try Google_Protobuf_Any(message: cluster), lastUpdated: Self.loadedAt)]
        let json = try AdminProto.json(ConfigDumpBuilder.full(source(loaded, xds: dump)))
        #expect(json.contains(#""dynamic_active_clusters":[{"version_info":"v7""#))
        #expect(json.contains(#""name":"dynamic-one""#))
        #expect(json.contains("envoy.admin.v3.EndpointsConfigDump"))
        #expect(json.contains("envoy.admin.v3.RoutesConfigDump"))
    }

    @Test func inlineRouteTablesAreStaticAndRDSOnesDynamic() throws {
        let bootstrap = """
            static_resources:
              listeners:
              - name: http
                address: { socket_address: { address: 0.0.0.0, port_value: 8080 } }
                filter_chains:
                - filters:
                  - name: envoy.filters.network.http_connection_manager
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                      stat_prefix: http
                      route_config:
                        name: inline-table
                        validate_clusters: false
                        virtual_hosts: [{ name: all, domains: ["*"], routes: [{ match: { prefix: / }, route: { cluster: a } }] }]
            """
        let loaded = try BootstrapLoader.load(text: bootstrap)
        let staticOnly = try AdminProto.json(ConfigDumpBuilder.full(source(loaded)))
        #expect(staticOnly.contains("envoy.admin.v3.RoutesConfigDump"), "inline tables are dumped without xDS too")
        #expect(staticOnly.contains(#""static_route_configs":[{"route_config":{"@type":"type.googleapis.com/envoy.config.route.v3.RouteConfiguration","name":"inline-table""#))

        var table = Envoy_Config_Route_V3_RouteConfiguration()
        table.name = "rds-table"
        var dump = XDSDump()
        dump.versions[.route] = "r3"
        dump.resources[.route] = ["rds-table": XDSResourceRecord(
            name: "rds-table", version: "r3", any: try Google_Protobuf_Any(message: table), lastUpdated: Self.loadedAt)]
        let json = try AdminProto.json(ConfigDumpBuilder.full(source(loaded, xds: dump)))
        #expect(json.contains(#""dynamic_route_configs":[{"version_info":"r3","route_config":{"@type":"type.googleapis.com/envoy.config.route.v3.RouteConfiguration","name":"rds-table"}"#))
        var listener = Envoy_Config_Listener_V3_Listener()
        listener.name = "waiting"
        dump.resources[.listener] = ["waiting": XDSResourceRecord(
            name: "waiting", version: "l1", any: try Google_Protobuf_Any(message: listener), lastUpdated: Self.loadedAt)]
        dump.warmingListeners = ["waiting"]
        let warming = try AdminProto.json(ConfigDumpBuilder.full(source(loaded, xds: dump)))
        #expect(warming.contains(#""dynamic_listeners":[{"name":"waiting","warming_state":{"version_info":"l1""#))
        let selected = try AdminProto.json(ConfigDumpBuilder.resource("static_route_configs", source(loaded)).get())
        #expect(selected.contains("envoy.admin.v3.RoutesConfigDump.StaticRouteConfig"))
        #expect(selected.contains(#""name":"inline-table""#))
    }
}
