import Foundation
import SluiceXDSTypes
import SwiftProtobuf

/// What a proxy hands the process that replaces it about xDS: every accepted resource with its
/// version, so the new process serves the same configuration at once and tells the management
/// server which versions it already holds instead of waiting for it.
public struct XDSHandoverState: Sendable, Codable, Equatable {
    public struct Resource: Sendable, Codable, Equatable {
        public var name: String
        public var version: String
        /// The resource as a serialized `google.protobuf.Any`.
        public var any: Data
    }

    /// Accepted version per type URL.
    public var versions: [String: String] = [:]
    /// Accepted resources per type URL.
    public var resources: [String: [Resource]] = [:]

    public init(_ dump: XDSDump) throws {
        for (type, version) in dump.versions { versions[type.typeURL] = version }
        for (type, records) in dump.resources {
            resources[type.typeURL] = try records.values.sorted { $0.name < $1.name }.map {
                Resource(name: $0.name, version: $0.version, any: try $0.any.serializedData())
            }
        }
    }
}

extension ADSClient {
    /// Starts from the state the previous process accepted: applies it as the configuration in
    /// force (reporting initialization when it is complete) before any stream opens.
    public func restore(_ state: XDSHandoverState) async throws {
        try await engine.restore(state)
    }
}

extension XDSEngine {
    func restore(_ state: XDSHandoverState) async throws {
        let now = Date()
        for (typeURL, resources) in state.resources {
            guard let type = XDSResourceType(typeURL: typeURL) else {
                throw XDSHandoverError(detail: "unknown resource type \(typeURL)")
            }
            var typeState = types[type]!
            typeState.version = state.versions[typeURL] ?? ""
            typeState.received = true
            for resource in resources {
                let any = try Google_Protobuf_Any(serializedBytes: resource.any)
                let decoded = decoder.decode(any, as: type, name: type.isCompleteSet ? nil : resource.name)
                guard decoded.error == nil, let value = decoded.value else {
                    throw XDSHandoverError(detail: "\(type.shortName) resource \(resource.name): \(decoded.error ?? "no value")")
                }
                typeState.resources[resource.name] = XDSResourceRecord(
                    name: resource.name, version: resource.version, any: any, lastUpdated: now)
                typeState.decoded[resource.name] = value
            }
            types[type] = typeState
        }
        var serviceNames: Set<String> = []
        for (name, value) in types[.cluster]!.decoded {
            guard case .cluster(let cluster) = value, case .eds(let service) = cluster.discovery else { continue }
            serviceNames.insert(service)
            if types[.endpoint]!.decoded[service] == nil { warming.insert(name) }
        }
        types[.endpoint]!.names = serviceNames
        resubscribeRoutes()
        await publish()
        advanceInitialization()
    }
}

/// Handed-over xDS state that cannot be used.
public struct XDSHandoverError: Error, CustomStringConvertible {
    public var detail: String
    public var description: String { "xDS state from the previous process: \(detail)" }
}
