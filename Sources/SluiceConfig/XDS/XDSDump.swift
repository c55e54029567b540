import Foundation
import SluiceXDSTypes
import SwiftProtobuf
import Synchronization

/// An accepted dynamic resource, kept as received for `/config_dump`.
public struct XDSResourceRecord: Sendable {
    public var name: String
    /// The version the resource arrived with (SotW: the response's; Delta: the resource's).
    public var version: String
    public var any: Google_Protobuf_Any
    public var lastUpdated: Date

    public init(name: String, version: String, any: Google_Protobuf_Any, lastUpdated: Date) {
        self.name = name
        self.version = version
        self.any = any
        self.lastUpdated = lastUpdated
    }
}

/// What xDS has delivered, for `/config_dump` and `/clusters`.
public struct XDSDump: Sendable {
    /// Last accepted `version_info` per type (SotW) or system version (Delta).
    public var versions: [XDSResourceType: String] = [:]
    /// Accepted resources per type, by name.
    public var resources: [XDSResourceType: [String: XDSResourceRecord]] = [:]
    /// Clusters waiting for their endpoints.
    public var warmingClusters: Set<String> = []
    /// Listeners waiting for their route configurations (RDS).
    public var warmingListeners: Set<String> = []

    public init() {}
}

/// The latest `XDSDump`, readable from any thread (the admin API).
public final class XDSDumpStore: Sendable {
    private let state = Mutex(XDSDump())

    public init() {}

    public var current: XDSDump { state.withLock { $0 } }

    func replace(with dump: XDSDump) {
        state.withLock { $0 = dump }
    }
}
