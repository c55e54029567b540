import Foundation
import Logging
import SluiceModel
import SluiceXDSTypes
import SwiftProtobuf

/// The xDS protocol as Envoy implements it, independent of the transport: per-type versions and
/// nonces, ACK (echo version and nonce) and NACK (last good version, the nonce, an error), valid
/// resources of a partly invalid response applied, unchanged resources not re-applied, cluster
/// warming (an EDS cluster serves only once its endpoints arrived), LDS requested only once the
/// clusters are initialized, and the last good configuration kept across reconnects.
///
/// The transport feeds it responses and forwards the requests it emits.
actor XDSEngine {
    /// A request for the current stream.
    enum Outgoing: Sendable {
        case sotw(Envoy_Service_Discovery_V3_DiscoveryRequest)
        case delta(Envoy_Service_Discovery_V3_DeltaDiscoveryRequest)
    }

    struct TypeState {
        var version = ""
        var nonce = ""
        /// Explicit names (EDS, RDS); LDS and CDS are wildcard.
        var names: Set<String> = []
        var requested = false
        var received = false
        var resources: [String: XDSResourceRecord] = [:]
        var decoded: [String: DecodedResource.Value] = [:]
    }

    let configuration: XDSConfiguration
    let staticConfiguration: ProxyConfiguration
    let decoder: XDSResourceDecoder
    private let apply: @Sendable (ProxyConfiguration) async -> Void
    private let initialized: @Sendable () -> Void
    private let logger: Logger
    private let dumpStore: XDSDumpStore

    var types: [XDSResourceType: TypeState] = [:]
    /// EDS clusters whose endpoints have not arrived since they were added or changed.
    var warming: Set<String> = []
    private var clustersInitialized = false
    private var reportedInitialized = false
    private var lastApplied: ProxyConfiguration?
    private var send: (@Sendable (Outgoing) -> Void)?
    private var nodeSent = false

    init(
        configuration: XDSConfiguration,
        staticConfiguration: ProxyConfiguration,
        options: TranslationOptions,
        dump: XDSDumpStore,
        logger: Logger,
        apply: @escaping @Sendable (ProxyConfiguration) async -> Void,
        initialized: @escaping @Sendable () -> Void
    ) {
        self.configuration = configuration
        self.staticConfiguration = staticConfiguration
        self.decoder = XDSResourceDecoder(options: options)
        self.dumpStore = dump
        self.logger = logger
        self.apply = apply
        self.initialized = initialized
        for type in XDSResourceType.allCases { types[type] = TypeState() }
        clustersInitialized = !configuration.clustersViaADS
    }

    var isDelta: Bool { configuration.wireProtocol == .delta }

    // MARK: Stream lifecycle

    /// A new stream: nonces start over; every type already in use is requested again with the
    /// versions this proxy holds, so the server can skip what did not change.
    func streamStarted(_ send: @escaping @Sendable (Outgoing) -> Void) {
        self.send = send
        nodeSent = false
        for type in XDSResourceType.allCases {
            types[type]!.nonce = ""
            types[type]!.requested = false
        }
        if configuration.clustersViaADS { request(.cluster) }
        if !types[.endpoint]!.names.isEmpty { request(.endpoint) }
        if configuration.listenersViaADS, clustersInitialized { request(.listener) }
    }

    func streamEnded() {
        send = nil
    }

    // MARK: Responses

    func receive(_ response: Envoy_Service_Discovery_V3_DiscoveryResponse) async {
        guard let type = XDSResourceType(typeURL: response.typeURL) else {
            logger.warning("ignoring a response of unknown type", metadata: ["type": "\(response.typeURL)"])
            return
        }
        types[type]!.nonce = response.nonce
        let resources = response.resources.map { (name: nil as String?, version: response.versionInfo, any: $0) }
        let errors = await update(type, resources: resources, removed: [], completeSet: type.isCompleteSet)
        if errors.isEmpty { types[type]!.version = response.versionInfo }
        finishUpdate(type, errors: errors)
    }

    func receive(_ response: Envoy_Service_Discovery_V3_DeltaDiscoveryResponse) async {
        guard let type = XDSResourceType(typeURL: response.typeURL) else {
            logger.warning("ignoring a response of unknown type", metadata: ["type": "\(response.typeURL)"])
            return
        }
        types[type]!.nonce = response.nonce
        let resources = response.resources.map { (name: Optional($0.name), version: $0.version, any: $0.resource) }
        let errors = await update(type, resources: resources, removed: response.removedResources, completeSet: false)
        if errors.isEmpty { types[type]!.version = response.systemVersionInfo }
        finishUpdate(type, errors: errors)
    }

    /// After a response: subscription changes first (as Envoy sends them), then the ACK or
    /// NACK, then LDS once the clusters are initialized.
    private func finishUpdate(_ type: XDSResourceType, errors: [String]) {
        if type == .cluster { resubscribeEndpoints() }
        acknowledge(type, errors: errors)
        advanceInitialization()
    }

    /// Applies one response's resources; returns the NACK reasons (empty: ACK).
    private func update(
        _ type: XDSResourceType, resources: [(name: String?, version: String, any: Google_Protobuf_Any)],
        removed: [String], completeSet: Bool
    ) async -> [String] {
        types[type]!.received = true
        var state = types[type]!
        var errors: [String] = []
        var seen: Set<String> = []
        let decoded = resources.map { decoder.decode($0.any, as: type, name: $0.name) }
        for resource in decoded where !resource.name.isEmpty && !seen.insert(resource.name).inserted {
            return ["duplicate \(type.noun) \(resource.name) found"]
        }
        let warmingBefore = warming
        var changed = false
        let now = Date()
        for (index, resource) in decoded.enumerated() {
            if let error = resource.error {
                errors.append("\(resource.name): \(error)")
                continue
            }
            for note in resource.notes where note.kind == .ignored {
                logger.info("accepted with an ignored extension", metadata: ["resource": "\(resource.name)", "note": "\(note)"])
            }
            // Endpoints in a response finish warming even when unchanged.
            if type == .endpoint { markWarmed(serviceName: resource.name) }
            // Unchanged content is not applied again (the recorded version stays, as in Envoy).
            if let existing = state.resources[resource.name], existing.any == resource.any { continue }
            state.resources[resource.name] = XDSResourceRecord(
                name: resource.name, version: resources[index].version, any: resource.any, lastUpdated: now)
            state.decoded[resource.name] = resource.value
            changed = true
            // A new EDS service waits for its endpoints; one already known reuses them (Envoy's
            // EDS cache), so an updated cluster does not stall on a server that will not resend.
            if type == .cluster, case .cluster(let cluster)? = resource.value, case .eds(let service) = cluster.discovery,
               types[.endpoint]!.decoded[service] == nil {
                warming.insert(cluster.name)
            }
        }
        // Delta names a subscribed resource the server does not have in `removed_resources`:
        // a cluster waiting for such endpoints serves with none (Envoy does the same).
        if type == .endpoint { for name in removed { markWarmed(serviceName: name) } }
        var gone = Set(removed)
        if completeSet {
            let named = Set(decoded.map(\.name))
            gone.formUnion(state.resources.keys.filter { !named.contains($0) })
        }
        for name in gone where state.resources[name] != nil {
            state.resources[name] = nil
            state.decoded[name] = nil
            if type == .cluster { warming.remove(name) }
            changed = true
        }
        types[type] = state
        if changed || warming != warmingBefore { await publish() }
        return errors
    }

    /// Endpoints arrived for `serviceName`: the clusters waiting for them can serve.
    private func markWarmed(serviceName: String) {
        for (name, value) in types[.cluster]!.decoded {
            if case .cluster(let cluster) = value, case .eds(let service) = cluster.discovery, service == serviceName {
                warming.remove(name)
            }
        }
    }

    /// `initial_fetch_timeout` ran out for clusters still warming: they serve with what is known.
    func warmingTimedOut(_ names: Set<String>) async {
        let expired = warming.intersection(names)
        guard !expired.isEmpty else { return }
        logger.warning("clusters served without endpoints after initial_fetch_timeout", metadata: ["clusters": "\(expired.sorted())"])
        warming.subtract(expired)
        await publish()
        advanceInitialization()
    }

    // MARK: Configuration

    /// Static configuration plus every accepted dynamic resource; warming clusters are left out.
    private func assembledConfiguration() -> ProxyConfiguration {
        var configuration = staticConfiguration
        let staticNames = Set(configuration.clusters.map(\.name))
        let assignments = types[.endpoint]!.decoded
        for (name, value) in types[.cluster]!.decoded.sorted(by: { $0.key < $1.key }) where !staticNames.contains(name) {
            guard case .cluster(var cluster) = value, !warming.contains(name) else { continue }
            if case .eds(let service) = cluster.discovery {
                if case .assignment(let assignment)? = assignments[service] { cluster.loadAssignment = assignment } else {
                    cluster.loadAssignment = LoadAssignment()
                }
            }
            configuration.clusters.append(cluster)
        }
        let staticListeners = Set(configuration.listeners.map(\.name))
        for (name, value) in types[.listener]!.decoded.sorted(by: { $0.key < $1.key }) where !staticListeners.contains(name) {
            if case .listener(let listener) = value { configuration.listeners.append(listener) }
        }
        return configuration
    }

    func publish() async {
        publishDump()
        let configuration = assembledConfiguration()
        guard configuration != lastApplied else { return }
        lastApplied = configuration
        await apply(configuration)
    }

    private func publishDump() {
        var dump = XDSDump()
        for (type, state) in types {
            dump.versions[type] = state.version
            dump.resources[type] = state.resources
        }
        dump.warmingClusters = warming
        dumpStore.replace(with: dump)
    }

    // MARK: Requests

    /// EDS names follow the EDS clusters CDS delivered.
    private func resubscribeEndpoints() {
        var names: Set<String> = []
        for value in types[.cluster]!.decoded.values {
            if case .cluster(let cluster) = value, case .eds(let service) = cluster.discovery { names.insert(service) }
        }
        let previous = types[.endpoint]!.names
        guard names != previous else { return }
        types[.endpoint]!.names = names
        if isDelta {
            emitDelta(.endpoint, subscribe: names.subtracting(previous), unsubscribe: previous.subtracting(names))
        } else {
            request(.endpoint)
        }
        if !warming.isEmpty, let timeout = configuration.initialFetchTimeout {
            let pending = warming
            Task { [weak self] in
                try? await Task.sleep(for: timeout)
                await self?.warmingTimedOut(pending)
            }
        }
    }

    func advanceInitialization() {
        if !clustersInitialized, types[.cluster]!.received, warming.isEmpty {
            clustersInitialized = true
            if configuration.listenersViaADS, !types[.listener]!.requested { request(.listener) }
        }
        let listenersDone = !configuration.listenersViaADS || types[.listener]!.received
        if clustersInitialized, listenersDone, !reportedInitialized {
            reportedInitialized = true
            initialized()
        }
    }

    /// The first request for `type` on this stream (or a change of its names, in SotW).
    private func request(_ type: XDSResourceType) {
        types[type]!.requested = true
        if isDelta {
            let names = type.isCompleteSet ? [] : types[type]!.names
            emitDelta(type, subscribe: names, unsubscribe: [], initial: true)
            return
        }
        var request = Envoy_Service_Discovery_V3_DiscoveryRequest()
        request.typeURL = type.typeURL
        request.versionInfo = types[type]!.version
        request.responseNonce = types[type]!.nonce
        if !type.isCompleteSet { request.resourceNames = types[type]!.names.sorted() }
        emit(sotw: request)
    }

    private func acknowledge(_ type: XDSResourceType, errors: [String]) {
        var detail: Google_Rpc_Status?
        if !errors.isEmpty {
            var status = Google_Rpc_Status()
            status.code = 13  // INTERNAL, as Envoy reports rejected configuration
            status.message = "Error adding/updating \(type.noun)(s) " + errors.joined(separator: ", ")
            detail = status
            logger.warning("rejected \(type.shortName) update", metadata: ["reason": "\(status.message)"])
        }
        if isDelta {
            var request = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest()
            request.typeURL = type.typeURL
            request.responseNonce = types[type]!.nonce
            if let detail { request.errorDetail = detail }
            emit(delta: request)
        } else {
            var request = Envoy_Service_Discovery_V3_DiscoveryRequest()
            request.typeURL = type.typeURL
            request.versionInfo = types[type]!.version
            request.responseNonce = types[type]!.nonce
            if !type.isCompleteSet { request.resourceNames = types[type]!.names.sorted() }
            if let detail { request.errorDetail = detail }
            emit(sotw: request)
        }
    }

    private func emitDelta(_ type: XDSResourceType, subscribe: Set<String>, unsubscribe: Set<String>, initial: Bool = false) {
        var request = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest()
        request.typeURL = type.typeURL
        request.resourceNamesSubscribe = subscribe.sorted()
        request.resourceNamesUnsubscribe = unsubscribe.sorted()
        if initial {
            // Reconnecting: tell the server which versions this proxy already holds.
            for (name, record) in types[type]!.resources { request.initialResourceVersions[name] = record.version }
        }
        emit(delta: request)
    }

    private func emit(sotw request: Envoy_Service_Discovery_V3_DiscoveryRequest) {
        var request = request
        if !nodeSent || !configuration.setNodeOnFirstMessageOnly { request.node = configuration.node }
        nodeSent = true
        send?(.sotw(request))
    }

    private func emit(delta request: Envoy_Service_Discovery_V3_DeltaDiscoveryRequest) {
        var request = request
        if !nodeSent || !configuration.setNodeOnFirstMessageOnly { request.node = configuration.node }
        nodeSent = true
        send?(.delta(request))
    }
}
