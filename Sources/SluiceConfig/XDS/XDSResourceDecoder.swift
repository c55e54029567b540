import SluiceModel
import SluiceXDSTypes
import SwiftProtobuf

/// One resource of a response, decoded and translated, or the reason it was rejected.
struct DecodedResource: Sendable {
    enum Value: Sendable {
        case listener(ListenerConfig)
        case cluster(ClusterConfig)
        case assignment(LoadAssignment)
        case route(RouteConfiguration)
    }

    var name: String
    var any: Google_Protobuf_Any
    var value: Value?
    /// Why the resource cannot be used (unsupported or invalid), for the NACK.
    var error: String?
    /// Accepted-but-ignored parts (Istio telemetry filters), for logging.
    var notes: [ConfigIssue]
}

/// Turns xDS resources into Sluice's model with the same checks as a bootstrap file.
struct XDSResourceDecoder: Sendable {
    let options: TranslationOptions

    func decode(_ any: Google_Protobuf_Any, as type: XDSResourceType, name expectedName: String? = nil) -> DecodedResource {
        guard XDSResourceType(typeURL: any.typeURL) == type else {
            return DecodedResource(
                name: expectedName ?? "", any: any, value: nil,
                error: "resource of type \(any.typeURL) in a \(type.shortName) response", notes: [])
        }
        do {
            switch type {
            case .listener:
                let listener = try Envoy_Config_Listener_V3_Listener(unpackingAny: any)
                var context = TranslationContext(options: options)
                let translated = context.listener(listener, path: "", fallbackName: listener.name)
                return result(listener.name, any, translated.map(DecodedResource.Value.listener), SupportChecker().check(listener) + context.issues)
            case .cluster:
                let cluster = try Envoy_Config_Cluster_V3_Cluster(unpackingAny: any)
                var context = TranslationContext(options: options)
                let translated = context.cluster(cluster, path: "")
                return result(cluster.name, any, translated.map(DecodedResource.Value.cluster), SupportChecker().check(cluster) + context.issues)
            case .endpoint:
                let assignment = try Envoy_Config_Endpoint_V3_ClusterLoadAssignment(unpackingAny: any)
                var context = TranslationContext(options: options)
                let translated = context.loadAssignment(assignment, path: "", allowHostnames: false)
                return result(assignment.clusterName, any, .assignment(translated), SupportChecker().check(assignment) + context.issues)
            case .route:
                let route = try Envoy_Config_Route_V3_RouteConfiguration(unpackingAny: any)
                var context = TranslationContext(options: options)
                let translated = context.routeConfiguration(route, path: "", inline: false)
                return result(route.name, any, translated.map(DecodedResource.Value.route), SupportChecker().check(route) + context.issues)
            }
        } catch {
            return DecodedResource(name: expectedName ?? "", any: any, value: nil, error: "cannot decode: \(error)", notes: [])
        }
    }

    private func result(
        _ name: String, _ any: Google_Protobuf_Any, _ value: DecodedResource.Value?, _ issues: [ConfigIssue]
    ) -> DecodedResource {
        let errors = issues.filter(\.isError)
        if errors.isEmpty, let value {
            return DecodedResource(name: name, any: any, value: value, error: nil, notes: issues)
        }
        let message = errors.isEmpty ? "cannot be translated" : errors.map(\.description).joined(separator: "; ")
        return DecodedResource(name: name, any: any, value: nil, error: message, notes: issues)
    }
}
