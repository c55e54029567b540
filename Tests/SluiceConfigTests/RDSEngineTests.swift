import Foundation
@testable import SluiceConfig
import SluiceModel
import SluiceXDSTypes
import SwiftProtobuf
import Synchronization
import Testing

/// RDS over ADS: subscriptions following the listeners' HTTP connection managers, listener
/// warming, ACK/NACK and the hand-over state.
@Suite struct RDSEngineTests {
    typealias Recorder = XDSEngineTests.Recorder

    /// An engine past CDS (no clusters over ADS), so LDS is requested at once.
    func engine(_ wire: XDSConfiguration.WireProtocol = .stateOfTheWorld, timeout: Duration? = nil,
                staticConfiguration: ProxyConfiguration = ProxyConfiguration()) async -> (XDSEngine, Recorder) {
        let recorder = Recorder()
        let configuration = XDSConfiguration(
            wireProtocol: wire, server: .tcp(SocketEndpoint("127.0.0.1:1")!), clusterName: "xds", node: XDSEngineTests.node,
            setNodeOnFirstMessageOnly: true, listenersViaADS: true, clustersViaADS: false, initialFetchTimeout: timeout)
        let engine = XDSEngine(
            configuration: configuration, staticConfiguration: staticConfiguration, options: TranslationOptions(),
            dump: XDSDumpStore(), logger: .init(label: "test"),
            apply: { configuration in recorder.applied.withLock { $0.append(configuration) } },
            initialized: { recorder.initialized.withLock { $0 += 1 } })
        await engine.streamStarted { request in recorder.requests.withLock { $0.append(request) } }
        return (engine, recorder)
    }

    /// A listener on `port` whose HCM fetches `route` over ADS.
    static func rdsListener(_ name: String, port: Int, route: String, fetchTimeout: String? = nil) throws -> Google_Protobuf_Any {
        let timeout = fetchTimeout.map { #", "initial_fetch_timeout": "\#($0)""# } ?? ""
        return try XDSEngineTests.any("""
            {"name": "\(name)", "address": {"socket_address": {"address": "0.0.0.0", "port_value": \(port)}},
             "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
               "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
               "stat_prefix": "\(name)", "rds": {"route_config_name": "\(route)", "config_source": {"ads": {}\(timeout)}},
               "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}
            """, XDSResourceType.listener.rawValue)
    }

    static func routes(_ name: String, cluster: String = "a", validate: Bool? = nil) throws -> Google_Protobuf_Any {
        let validation = validate.map { #", "validate_clusters": \#($0)"# } ?? ""
        return try XDSEngineTests.any("""
            {"name": "\(name)"\(validation), "virtual_hosts": [{"name": "all", "domains": ["*"],
              "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "\(cluster)"}}]}]}
            """, XDSResourceType.route.rawValue)
    }

    static func badRoutes(_ name: String) throws -> Google_Protobuf_Any {
        try XDSEngineTests.any("""
            {"name": "\(name)", "virtual_hosts": [{"name": "all", "domains": ["*"],
              "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "a", "retry_policy": {"retry_on": "bogus"}}}]}]}
            """, XDSResourceType.route.rawValue)
    }

    func routeRequests(_ recorder: Recorder) -> [Envoy_Service_Discovery_V3_DiscoveryRequest] {
        recorder.sotw.filter { $0.typeURL == XDSResourceType.route.typeURL }
    }

    @Test func listenersWarmUntilTheirRouteTableArrives() async throws {
        let (engine, recorder) = await engine()
        #expect(recorder.sotw.map(\.typeURL) == [XDSResourceType.listener.typeURL])
        await engine.receive(XDSEngineTests.response(.listener, "l1", "1", [try Self.rdsListener("http", port: 8080, route: "r1")]))
        let afterLDS = recorder.sotw
        #expect(afterLDS.count == 3)
        #expect(afterLDS[1].typeURL == XDSResourceType.route.typeURL && afterLDS[1].resourceNames == ["r1"],
                "RDS is requested before the LDS ACK, as Envoy does")
        #expect(afterLDS[2].typeURL == XDSResourceType.listener.typeURL && afterLDS[2].versionInfo == "l1" && !afterLDS[2].hasErrorDetail)
        #expect(recorder.last?.listeners.isEmpty != false, "a listener waiting for its routes is not served")
        #expect(recorder.initialized.withLock { $0 } == 0, "initialization waits for RDS")

        await engine.receive(XDSEngineTests.response(.route, "r-v1", "2", [try Self.routes("r1")]))
        let ack = try #require(routeRequests(recorder).last)
        #expect(ack.versionInfo == "r-v1" && ack.responseNonce == "2" && ack.resourceNames == ["r1"] && !ack.hasErrorDetail)
        let configuration = try #require(recorder.last)
        #expect(configuration.listeners.map(\.name) == ["http"])
        #expect(configuration.routeConfigurations["r1"]?.virtualHosts.first?.routes.first?.action
            == .forward(RouteAction(target: .cluster("a"))))
        #expect(configuration.routeConfigurations["r1"]?.validateClusters == false, "RDS tables default to no cluster validation")
        #expect(recorder.initialized.withLock { $0 } == 1)
    }

    @Test func anInvalidRouteTableIsNACKedAndTheLastGoodOneKept() async throws {
        let (engine, recorder) = await engine()
        await engine.receive(XDSEngineTests.response(.listener, "l1", "1", [try Self.rdsListener("http", port: 8080, route: "r1")]))
        await engine.receive(XDSEngineTests.response(.route, "r-v1", "2", [try Self.routes("r1", cluster: "a")]))
        await engine.receive(XDSEngineTests.response(.route, "r-v2", "3", [try Self.badRoutes("r1")]))
        let nack = try #require(routeRequests(recorder).last)
        #expect(nack.responseNonce == "3" && nack.versionInfo == "r-v1")
        #expect(nack.errorDetail.message.contains("Error adding/updating route configuration(s) r1:"))
        #expect(nack.errorDetail.message.contains("unknown retry condition \"bogus\""))
        #expect(recorder.last?.routeConfigurations["r1"]?.clusterNames == ["a"], "the last good table stays")
    }

    @Test func validateClustersRejectsUnknownClusters() async throws {
        let (engine, recorder) = await engine()
        await engine.receive(XDSEngineTests.response(.listener, "l1", "1", [try Self.rdsListener("http", port: 8080, route: "r1")]))
        await engine.receive(XDSEngineTests.response(.route, "r-v1", "2", [try Self.routes("r1", cluster: "nowhere", validate: true)]))
        let nack = try #require(routeRequests(recorder).last)
        #expect(nack.errorDetail.message.contains("r1: route: unknown cluster 'nowhere'"))
        #expect(recorder.last?.listeners.isEmpty != false, "still warming")
    }

    @Test func inlineRouteTablesOfLDSListenersValidateTheirClusters() async throws {
        let (engine, recorder) = await engine()
        func listener(validate: String) throws -> Google_Protobuf_Any {
            try XDSEngineTests.any("""
                {"name": "inline", "address": {"socket_address": {"address": "0.0.0.0", "port_value": 8080}},
                 "filter_chains": [{"filters": [{"name": "hcm", "typed_config": {
                   "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                   "stat_prefix": "inline", "route_config": {\(validate) "name": "t", "virtual_hosts": [{"name": "all", "domains": ["*"],
                     "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "missing"}}]}]}}}]}]}
                """, XDSResourceType.listener.rawValue)
        }
        await engine.receive(XDSEngineTests.response(.listener, "l1", "1", [try listener(validate: "")]))
        let nack = try #require(recorder.sotw.last)
        #expect(nack.errorDetail.message.contains("inline: route: unknown cluster 'missing'"))
        await engine.receive(XDSEngineTests.response(.listener, "l2", "2", [try listener(validate: #""validate_clusters": false,"#)]))
        #expect(recorder.sotw.last?.hasErrorDetail == false)
        #expect(recorder.last?.listeners.map(\.name) == ["inline"])
    }

    @Test func subscriptionsFollowListenersAndUnrequestedTablesAreSkipped() async throws {
        let (engine, recorder) = await engine()
        await engine.receive(XDSEngineTests.response(.listener, "l1", "1", [
            try Self.rdsListener("a", port: 8080, route: "r1"), try Self.rdsListener("b", port: 8081, route: "r2"),
        ]))
        #expect(routeRequests(recorder).last?.resourceNames == ["r1", "r2"])
        await engine.receive(XDSEngineTests.response(.route, "v1", "2", [
            try Self.routes("r1"), try Self.routes("r2"), try Self.badRoutes("stranger"),
        ]))
        #expect(routeRequests(recorder).last?.hasErrorDetail == false, "a table nobody asked for is skipped, not judged")
        #expect(recorder.last.map { Set($0.routeConfigurations.keys) } == ["r1", "r2"])

        // Listener b goes away: r2 is unsubscribed and dropped.
        await engine.receive(XDSEngineTests.response(.listener, "l2", "3", [try Self.rdsListener("a", port: 8080, route: "r1")]))
        #expect(routeRequests(recorder).last?.resourceNames == ["r1"])
        #expect(recorder.last.map { Set($0.routeConfigurations.keys) } == ["r1"])
        #expect(recorder.last?.listeners.map(\.name) == ["a"])
    }

    @Test func anUpdatedListenerKeepsServingItsOldVersionWhileTheNewOneWarms() async throws {
        let (engine, recorder) = await engine()
        await engine.receive(XDSEngineTests.response(.listener, "l1", "1", [try Self.rdsListener("http", port: 8080, route: "r1")]))
        await engine.receive(XDSEngineTests.response(.route, "v1", "2", [try Self.routes("r1")]))
        await engine.receive(XDSEngineTests.response(.listener, "l2", "3", [try Self.rdsListener("http", port: 8080, route: "r2")]))
        let serving = try #require(recorder.last?.listeners.first)
        guard case .httpConnectionManager(let old)? = serving.filterChains.first?.filters.first else {
            Issue.record("expected an HCM")
            return
        }
        #expect(old.rdsName == "r1", "the previous version serves until r2 arrives")
        #expect(recorder.last?.routeConfigurations["r1"] != nil, "with its route table")
        #expect(routeRequests(recorder).last?.resourceNames == ["r1", "r2"])
        await engine.receive(XDSEngineTests.response(.route, "v2", "4", [try Self.routes("r2")]))
        guard case .httpConnectionManager(let new)? = recorder.last?.listeners.first?.filterChains.first?.filters.first else {
            Issue.record("expected an HCM")
            return
        }
        #expect(new.rdsName == "r2")
        #expect(recorder.last.map { Set($0.routeConfigurations.keys) } == ["r2"])
        #expect(routeRequests(recorder).last?.resourceNames == ["r2"], "r1 is unsubscribed once nothing uses it")
    }

    @Test func initialFetchTimeoutServesTheListenerWithoutRoutes() async throws {
        let (engine, recorder) = await engine()
        await engine.receive(XDSEngineTests.response(.listener, "l1", "1", [
            try Self.rdsListener("quick", port: 8080, route: "r1", fetchTimeout: "0.1s"),
            try Self.rdsListener("patient", port: 8081, route: "r2", fetchTimeout: "0s"),
        ]))
        try await Task.sleep(for: .milliseconds(400))
        #expect(recorder.last?.listeners.map(\.name) == ["quick"], "0s waits forever, as Istio configures it")
        #expect(recorder.last?.routeConfigurations.isEmpty == true)
        #expect(recorder.initialized.withLock { $0 } == 0)
        await engine.receive(XDSEngineTests.response(.route, "v1", "2", [try Self.routes("r2")]))
        #expect(recorder.last?.listeners.map(\.name) == ["patient", "quick"])
        #expect(recorder.initialized.withLock { $0 } == 1)
    }

    @Test func deltaSubscribesAndUnsubscribesByName() async throws {
        let (engine, recorder) = await engine(.delta)
        func deltaResponse(_ type: XDSResourceType, _ nonce: String, _ resources: [(String, Google_Protobuf_Any)], removed: [String] = [])
            -> Envoy_Service_Discovery_V3_DeltaDiscoveryResponse
        {
            var response = Envoy_Service_Discovery_V3_DeltaDiscoveryResponse()
            response.typeURL = type.typeURL
            response.nonce = nonce
            response.removedResources = removed
            response.resources = resources.map { name, any in
                var resource = Envoy_Service_Discovery_V3_Resource()
                resource.name = name
                resource.version = "\(name)-1"
                resource.resource = any
                return resource
            }
            return response
        }
        await engine.receive(deltaResponse(.listener, "1", [("http", try Self.rdsListener("http", port: 8080, route: "r1"))]))
        let subscribe = try #require(recorder.delta.first { $0.typeURL == XDSResourceType.route.typeURL })
        #expect(subscribe.resourceNamesSubscribe == ["r1"])
        await engine.receive(deltaResponse(.route, "2", [("r1", try Self.routes("r1"))]))
        #expect(recorder.last?.listeners.map(\.name) == ["http"])
        let ack = try #require(recorder.delta.last)
        #expect(ack.typeURL == XDSResourceType.route.typeURL && ack.responseNonce == "2" && !ack.hasErrorDetail)

        await engine.receive(deltaResponse(.listener, "3", [], removed: ["http"]))
        let unsubscribe = try #require(recorder.delta.last { $0.typeURL == XDSResourceType.route.typeURL && !$0.resourceNamesUnsubscribe.isEmpty })
        #expect(unsubscribe.resourceNamesUnsubscribe == ["r1"])
        #expect(recorder.last?.routeConfigurations.isEmpty == true)
    }

    @Test func staticListenersWithRDSSubscribeAtStart() async throws {
        let bootstrap = """
            dynamic_resources:
              ads_config: { api_type: GRPC, transport_api_version: V3, grpc_services: [{ envoy_grpc: { cluster_name: xds } }] }
              lds_config: { ads: {} }
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
                      rds: { route_config_name: static-routes, config_source: { ads: {} } }
              clusters:
              - name: xds
                type: STATIC
                connect_timeout: 1s
                load_assignment: { cluster_name: xds, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 18000 } } } }] }] }
            """
        let loaded = try BootstrapLoader.load(text: bootstrap)
        let (engine, recorder) = await engine(staticConfiguration: loaded.configuration)
        #expect(routeRequests(recorder).map(\.resourceNames) == [["static-routes"]])
        await engine.receive(XDSEngineTests.response(.listener, "l1", "1", []))
        #expect(recorder.initialized.withLock { $0 } == 0, "the static listener's routes are still pending")
        await engine.receive(XDSEngineTests.response(.route, "v1", "2", [try Self.routes("static-routes")]))
        #expect(recorder.last?.routeConfigurations["static-routes"] != nil)
        #expect(recorder.initialized.withLock { $0 } == 1)
    }

    @Test func handOverStateCarriesRouteTables() async throws {
        let store = XDSDumpStore()
        let recorder = Recorder()
        let configuration = XDSConfiguration(
            wireProtocol: .stateOfTheWorld, server: .tcp(SocketEndpoint("127.0.0.1:1")!), clusterName: "xds",
            node: XDSEngineTests.node, setNodeOnFirstMessageOnly: true, listenersViaADS: true, clustersViaADS: false,
            initialFetchTimeout: nil)
        let old = XDSEngine(
            configuration: configuration, staticConfiguration: ProxyConfiguration(), options: TranslationOptions(), dump: store,
            logger: .init(label: "test"), apply: { _ in }, initialized: {})
        await old.streamStarted { _ in }
        await old.receive(XDSEngineTests.response(.listener, "l1", "1", [try Self.rdsListener("http", port: 8080, route: "r1")]))
        await old.receive(XDSEngineTests.response(.route, "v1", "2", [try Self.routes("r1")]))
        let state = try XDSHandoverState(store.current)
        #expect(state.resources[XDSResourceType.route.typeURL]?.map(\.name) == ["r1"])
        #expect(state.versions[XDSResourceType.route.typeURL] == "v1")

        let new = XDSEngine(
            configuration: configuration, staticConfiguration: ProxyConfiguration(), options: TranslationOptions(),
            dump: XDSDumpStore(), logger: .init(label: "test"),
            apply: { configuration in recorder.applied.withLock { $0.append(configuration) } },
            initialized: { recorder.initialized.withLock { $0 += 1 } })
        try await new.restore(state)
        #expect(recorder.last?.listeners.map(\.name) == ["http"], "served at once, warm")
        #expect(recorder.last?.routeConfigurations["r1"] != nil)
        #expect(recorder.initialized.withLock { $0 } == 1)
        await new.streamStarted { request in recorder.requests.withLock { $0.append(request) } }
        let resubscribe = try #require(routeRequests(recorder).first)
        #expect(resubscribe.resourceNames == ["r1"] && resubscribe.versionInfo == "v1")
    }
}
