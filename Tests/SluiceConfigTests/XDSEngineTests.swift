import Foundation
@testable import SluiceConfig
import SluiceModel
import SluiceXDSTypes
import SwiftProtobuf
import Synchronization
import Testing

/// The xDS protocol engine without a transport: feed responses, inspect requests and applied
/// configurations.
@Suite struct XDSEngineTests {
    final class Recorder: Sendable {
        let requests = Mutex<[XDSEngine.Outgoing]>([])
        let applied = Mutex<[ProxyConfiguration]>([])
        let initialized = Mutex(0)

        var sotw: [Envoy_Service_Discovery_V3_DiscoveryRequest] {
            requests.withLock { $0.compactMap { if case .sotw(let request) = $0 { return request } else { return nil } } }
        }

        var delta: [Envoy_Service_Discovery_V3_DeltaDiscoveryRequest] {
            requests.withLock { $0.compactMap { if case .delta(let request) = $0 { return request } else { return nil } } }
        }

        var last: ProxyConfiguration? { applied.withLock { $0.last } }
    }

    static let node: Envoy_Config_Core_V3_Node = {
        var node = Envoy_Config_Core_V3_Node()
        node.id = "test"
        return node
    }()

    func engine(_ wire: XDSConfiguration.WireProtocol = .stateOfTheWorld, timeout: Duration? = nil) async -> (XDSEngine, Recorder) {
        let recorder = Recorder()
        let configuration = XDSConfiguration(
            wireProtocol: wire, server: .tcp(SocketEndpoint("127.0.0.1:1")!), clusterName: "xds", node: Self.node,
            setNodeOnFirstMessageOnly: true, listenersViaADS: true, clustersViaADS: true, initialFetchTimeout: timeout)
        let engine = XDSEngine(
            configuration: configuration, staticConfiguration: ProxyConfiguration(), options: TranslationOptions(),
            dump: XDSDumpStore(), logger: .init(label: "test"),
            apply: { configuration in recorder.applied.withLock { $0.append(configuration) } },
            initialized: { recorder.initialized.withLock { $0 += 1 } })
        await engine.streamStarted { request in recorder.requests.withLock { $0.append(request) } }
        return (engine, recorder)
    }

    static func any(_ json: String, _ type: String) throws -> Google_Protobuf_Any {
        EnvoyMessageRegistry.registerAllForAny()
        let message = try Google_Protobuf_Any.messageType(forMessageName: type)!.init(jsonString: json)
        return try Google_Protobuf_Any(message: message)
    }

    static func edsCluster(_ name: String, timeout: String = "1s") throws -> Google_Protobuf_Any {
        try any("""
            {"name": "\(name)", "type": "EDS", "connect_timeout": "\(timeout)", "eds_cluster_config": {"eds_config": {"ads": {}}}}
            """, XDSResourceType.cluster.rawValue)
    }

    static func assignment(_ name: String, port: Int) throws -> Google_Protobuf_Any {
        try any("""
            {"cluster_name": "\(name)", "endpoints": [{"priority": 1, "locality": {"zone": "z1"}, "load_balancing_weight": 3, "lb_endpoints": [
              {"endpoint": {"address": {"socket_address": {"address": "10.0.0.1", "port_value": \(port)}}}, "health_status": "DRAINING"}]}]}
            """, XDSResourceType.endpoint.rawValue)
    }

    static func response(_ type: XDSResourceType, _ version: String, _ nonce: String, _ resources: [Google_Protobuf_Any])
        -> Envoy_Service_Discovery_V3_DiscoveryResponse
    {
        var response = Envoy_Service_Discovery_V3_DiscoveryResponse()
        response.typeURL = type.typeURL
        response.versionInfo = version
        response.nonce = nonce
        response.resources = resources
        return response
    }

    @Test func clustersWarmUntilTheirEndpointsArriveThenListenersAreRequested() async throws {
        let (engine, recorder) = await engine()
        #expect(recorder.sotw.map(\.typeURL) == [XDSResourceType.cluster.typeURL])
        #expect(recorder.sotw.first?.node.id == "test", "the node goes on the first request")

        await engine.receive(Self.response(.cluster, "v1", "1", [try Self.edsCluster("c1")]))
        let afterCDS = recorder.sotw
        #expect(afterCDS.count == 3)
        #expect(afterCDS[1].typeURL == XDSResourceType.endpoint.typeURL && afterCDS[1].resourceNames == ["c1"],
                "EDS names are requested before the CDS ACK, as Envoy does")
        #expect(afterCDS[2].versionInfo == "v1" && afterCDS[2].responseNonce == "1" && !afterCDS[2].hasErrorDetail)
        #expect(!afterCDS[2].hasNode, "set_node_on_first_message_only")
        #expect(recorder.last?.clusters.isEmpty != false, "a warming cluster is not served yet")

        await engine.receive(Self.response(.endpoint, "e1", "2", [try Self.assignment("c1", port: 80)]))
        let cluster = try #require(recorder.last?.clusters.first)
        #expect(cluster.name == "c1")
        let locality = try #require(cluster.loadAssignment.localities.first)
        #expect(locality.priority == 1 && locality.weight == 3 && locality.endpoints.first?.health == .draining)
        #expect(recorder.sotw.last?.typeURL == XDSResourceType.listener.typeURL, "LDS only once clusters are warm")
    }

    @Test func aPartlyInvalidResponseAppliesTheValidPartAndNACKsWithTheOldVersion() async throws {
        let (engine, recorder) = await engine()
        await engine.receive(Self.response(.cluster, "v1", "1", [try Self.edsCluster("c1")]))
        await engine.receive(Self.response(.cluster, "v2", "2", [try Self.edsCluster("c1"), try Self.edsCluster("bad", timeout: "-1s"), try Self.edsCluster("c2")]))
        let nack = try #require(recorder.sotw.last)
        #expect(nack.responseNonce == "2" && nack.versionInfo == "v1")
        #expect(nack.errorDetail.message.contains("bad: connect_timeout"))
        #expect(recorder.sotw.contains { $0.typeURL == XDSResourceType.endpoint.typeURL && $0.resourceNames == ["c1", "c2"] },
                "the valid new cluster was applied (its endpoints are requested)")
    }

    @Test func duplicateNamesRejectTheWholeResponse() async throws {
        let (engine, recorder) = await engine()
        await engine.receive(Self.response(.cluster, "v1", "1", [try Self.edsCluster("c1"), try Self.edsCluster("c1")]))
        let nack = try #require(recorder.sotw.last { $0.typeURL == XDSResourceType.cluster.typeURL })
        #expect(nack.errorDetail.message.contains("duplicate cluster c1"))
        #expect(nack.versionInfo == "")
        #expect(!recorder.sotw.contains { $0.typeURL == XDSResourceType.endpoint.typeURL })
    }

    @Test func unchangedResourcesAreNotAppliedAgain() async throws {
        let (engine, recorder) = await engine()
        await engine.receive(Self.response(.cluster, "v1", "1", [try Self.edsCluster("c1")]))
        await engine.receive(Self.response(.endpoint, "e1", "2", [try Self.assignment("c1", port: 80)]))
        let applications = recorder.applied.withLock { $0.count }
        await engine.receive(Self.response(.endpoint, "e2", "3", [try Self.assignment("c1", port: 80)]))
        #expect(recorder.applied.withLock { $0.count } == applications)
        #expect(recorder.sotw.last?.versionInfo == "e2", "still ACKed with the new version")
    }

    @Test func initialFetchTimeoutServesWarmingClustersWithoutEndpoints() async throws {
        let (engine, recorder) = await engine(timeout: .milliseconds(100))
        await engine.receive(Self.response(.cluster, "v1", "1", [try Self.edsCluster("c1")]))
        #expect(!recorder.sotw.contains { $0.typeURL == XDSResourceType.listener.typeURL })
        try await Task.sleep(for: .milliseconds(400))
        #expect(recorder.last?.clusters.map(\.name) == ["c1"])
        #expect(recorder.sotw.contains { $0.typeURL == XDSResourceType.listener.typeURL })
    }

    @Test func deltaAcksByNonceAndResubscribesWithInitialVersions() async throws {
        let (engine, recorder) = await engine(.delta)
        var response = Envoy_Service_Discovery_V3_DeltaDiscoveryResponse()
        response.typeURL = XDSResourceType.cluster.typeURL
        response.nonce = "1"
        var resource = Envoy_Service_Discovery_V3_Resource()
        resource.name = "c1"
        resource.version = "r7"
        resource.resource = try Self.edsCluster("c1")
        response.resources = [resource]
        await engine.receive(response)
        let requests = recorder.delta
        #expect(requests[1].resourceNamesSubscribe == ["c1"])
        #expect(requests[2].responseNonce == "1" && !requests[2].hasErrorDetail)

        // Removed (missing) endpoints finish warming: the cluster serves with none.
        var removal = Envoy_Service_Discovery_V3_DeltaDiscoveryResponse()
        removal.typeURL = XDSResourceType.endpoint.typeURL
        removal.nonce = "2"
        removal.removedResources = ["c1"]
        await engine.receive(removal)
        #expect(recorder.last?.clusters.map(\.name) == ["c1"])

        await engine.streamEnded()
        await engine.streamStarted { request in recorder.requests.withLock { $0.append(request) } }
        let reconnect = try #require(recorder.delta.first { $0.typeURL == XDSResourceType.cluster.typeURL && !$0.initialResourceVersions.isEmpty })
        #expect(reconnect.initialResourceVersions == ["c1": "r7"])
    }

    /// Istio's RDS route tables (from a waypoint's config dump) translate.
    @Test func istioWaypointRoutesTranslate() throws {
        let directory = try #require(Conformance.directory, "conformance inputs not found (set SLUICE_CONFORMANCE_DIR)")
        let data = try Data(contentsOf: directory.appendingPathComponent("istio/waypoint-config_dump.json"))
        let dump = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let routes = (dump["configs"] as? [[String: Any]] ?? [])
            .filter { ($0["@type"] as? String)?.hasSuffix("RoutesConfigDump") == true }
            .flatMap { ($0["static_route_configs"] as? [[String: Any]] ?? []) + ($0["dynamic_route_configs"] as? [[String: Any]] ?? []) }
            .compactMap { ($0["route_config"] as? [String: Any])?.filter { $0.key != "@type" } }
        #expect(!routes.isEmpty)
        let decoder = XDSResourceDecoder(options: TranslationOptions())
        for route in routes {
            let json = String(decoding: try JSONSerialization.data(withJSONObject: route), as: UTF8.self)
            let decoded = decoder.decode(try Self.any(json, XDSResourceType.route.rawValue), as: .route)
            #expect(decoded.error == nil, "\(route["name"] ?? "?"): \(decoded.error ?? "")")
            guard case .route(let table)? = decoded.value else {
                Issue.record("no route table")
                continue
            }
            guard case .forward(let action)? = table.virtualHosts.first?.routes.first?.action else {
                Issue.record("expected a forwarding route")
                continue
            }
            #expect(action.timeout == nil, "Istio's timeout: 0s disables the route timeout")
            #expect(!table.validateClusters)
        }
    }
}
