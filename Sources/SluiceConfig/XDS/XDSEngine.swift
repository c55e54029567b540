import Foundation
import Logging
import SluiceModel
import SluiceXDSTypes
import SwiftProtobuf

/// The xDS protocol as Envoy implements it, independent of the transport: per-type versions and
/// nonces, ACK (echo version and nonce) and NACK (last good version, the nonce, an error), valid
/// resources of a partly invalid response applied, unchanged resources not re-applied, cluster
/// warming (an EDS cluster serves only once its endpoints arrived), LDS requested only once the
/// clusters are initialized, listener warming (a listener whose HTTP connection manager uses RDS
/// serves only once its route configuration arrived; an updated one keeps serving its previous
/// version meanwhile), and the last good configuration kept across reconnects.
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
    /// Subscribed RDS names that have neither arrived nor run out of `initial_fetch_timeout`.
    var routesPending: Set<String> = []
    /// The version of an updated listener that keeps serving while the new one warms.
    var previousListeners: [String: ListenerConfig] = [:]
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
        let staticNames = staticConfiguration.listeners.reduce(into: Set<String>()) { $0.formUnion(RouteDiscovery.routeNames(of: $1)) }
        types[.route]!.names = staticNames
        routesPending = staticNames
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
        if !types[.route]!.names.isEmpty { request(.route) }
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
        // The accepted version is known only now; the dump (and hand-over state) shows it.
        publishDump()
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
        // A route table nobody subscribed to is not for this proxy: skipped, not judged (Envoy
        // hands a response's resources only to the watches that asked for them).
        let subscribed = types[.route]!.names
        let wanted = resources.filter { resource in
            guard type == .route else { return true }
            let name = resource.name ?? (try? Envoy_Config_Route_V3_RouteConfiguration(unpackingAny: resource.any))?.name
            return name.map(subscribed.contains) ?? true
        }
        let decoded = wanted.map { decoder.decode($0.any, as: type, name: $0.name) }
        for resource in decoded where !resource.name.isEmpty && !seen.insert(resource.name).inserted {
            return ["duplicate \(type.noun) \(resource.name) found"]
        }
        let warmingBefore = warming
        let routesPendingBefore = routesPending
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
            if type == .route, case .route(let routes)? = resource.value, let unknown = unknownCluster(in: routes) {
                errors.append("\(resource.name): route: unknown cluster '\(unknown)'")
                continue
            }
            // An inline route table validates its clusters by default, against those known now.
            if type == .listener, case .listener(let listener)? = resource.value,
               let unknown = inlineRouteTables(of: listener).lazy.compactMap(unknownCluster(in:)).first {
                errors.append("\(resource.name): route: unknown cluster '\(unknown)'")
                continue
            }
            // Endpoints in a response finish warming even when unchanged; so do route tables.
            if type == .endpoint { markWarmed(serviceName: resource.name) }
            if type == .route { routesPending.remove(resource.name) }
            // Unchanged content is not applied again (the recorded version stays, as in Envoy).
            if let existing = state.resources[resource.name], existing.any == resource.any { continue }
            state.resources[resource.name] = XDSResourceRecord(
                name: resource.name, version: wanted[index].version, any: resource.any, lastUpdated: now)
            state.decoded[resource.name] = resource.value
            changed = true
            // A new EDS service waits for its endpoints; one already known reuses them (Envoy's
            // EDS cache), so an updated cluster does not stall on a server that will not resend.
            if type == .cluster, case .cluster(let cluster)? = resource.value, case .eds(let service) = cluster.discovery,
               types[.endpoint]!.decoded[service] == nil {
                warming.insert(cluster.name)
            }
            if type == .listener { keepServingWhileWarming(resource.name, replacedBy: resource.value) }
        }
        // Delta names a subscribed resource the server does not have in `removed_resources`:
        // a cluster waiting for such endpoints serves with none (Envoy does the same).
        if type == .endpoint { for name in removed { markWarmed(serviceName: name) } }
        if type == .route { routesPending.subtract(removed) }
        var gone = Set(removed)
        if completeSet {
            let named = Set(decoded.map(\.name))
            gone.formUnion(state.resources.keys.filter { !named.contains($0) })
        }
        for name in gone where state.resources[name] != nil {
            state.resources[name] = nil
            state.decoded[name] = nil
            if type == .cluster { warming.remove(name) }
            if type == .listener { previousListeners[name] = nil }
            changed = true
        }
        types[type] = state
        // Before publishing, so a listener waiting for a new route table is not served yet; and
        // the RDS request goes out before the LDS ACK, as Envoy sends them.
        if type == .listener { resubscribeRoutes() }
        if type == .route { retireWarmedPreviousListeners() }
        if changed || warming != warmingBefore || routesPending != routesPendingBefore { await publish() }
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

    /// A listener about to be replaced by a version that waits for RDS keeps its current
    /// version serving (Envoy keeps the active listener until the warming one is ready).
    private func keepServingWhileWarming(_ name: String, replacedBy value: DecodedResource.Value?) {
        guard case .listener(let new)? = value, !RouteDiscovery.routeNames(of: new).isDisjoint(with: pendingAfterSubscribing(new)),
              case .listener(let old)? = types[.listener]!.decoded[name]
        else {
            previousListeners[name] = nil
            return
        }
        if !isWarming(old) { previousListeners[name] = old }
    }

    /// Once a replacing listener is warm, its previous version stops serving and the route
    /// tables only it used are unsubscribed.
    private func retireWarmedPreviousListeners() {
        let retired = previousListeners.keys.filter { name in
            guard case .listener(let current)? = types[.listener]!.decoded[name] else { return true }
            return !isWarming(current)
        }
        guard !retired.isEmpty else { return }
        for name in retired { previousListeners[name] = nil }
        resubscribeRoutes()
    }

    /// The names of `listener` that will still be pending once it is subscribed.
    private func pendingAfterSubscribing(_ listener: ListenerConfig) -> Set<String> {
        let names = RouteDiscovery.routeNames(of: listener)
        return names.filter { routesPending.contains($0) || types[.route]!.decoded[$0] == nil }
    }

    /// A listener waits while any of its route configurations is pending.
    func isWarming(_ listener: ListenerConfig) -> Bool {
        !RouteDiscovery.routeNames(of: listener).isDisjoint(with: routesPending)
    }

    private func inlineRouteTables(of listener: ListenerConfig) -> [RouteConfiguration] {
        (listener.filterChains + (listener.defaultFilterChain.map { [$0] } ?? [])).flatMap(\.filters).compactMap {
            if case .httpConnectionManager(let manager) = $0, case .inline(let routes) = manager.routes { return routes }
            return nil
        }
    }

    /// With `validate_clusters`, a route table naming a cluster this proxy does not know is rejected.
    private func unknownCluster(in routes: RouteConfiguration) -> String? {
        guard routes.validateClusters else { return nil }
        var known = Set(staticConfiguration.clusters.map(\.name))
        known.formUnion(types[.cluster]!.decoded.keys)
        return routes.clusterNames.sorted().first { !known.contains($0) }
    }

    /// `initial_fetch_timeout` ran out for route configurations still pending: their listeners
    /// serve without them (requests get 404 until they arrive), as in Envoy.
    func routeFetchTimedOut(_ names: Set<String>) async {
        let expired = routesPending.intersection(names)
        guard !expired.isEmpty else { return }
        logger.warning("listeners served without their route configurations after initial_fetch_timeout",
                       metadata: ["routes": "\(expired.sorted())"])
        routesPending.subtract(expired)
        retireWarmedPreviousListeners()
        await publish()
        advanceInitialization()
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
            guard case .listener(let listener) = value else { continue }
            if !isWarming(listener) {
                configuration.listeners.append(listener)
            } else if let previous = previousListeners[name] {
                configuration.listeners.append(previous)
            }
        }
        for (name, value) in types[.route]!.decoded {
            if case .route(let routes) = value { configuration.routeConfigurations[name] = routes }
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
        dump.warmingListeners = Set(types[.listener]!.decoded.compactMap { name, value in
            if case .listener(let listener) = value, isWarming(listener) { return name }
            return nil
        })
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

    /// RDS names follow the HTTP connection managers of every listener, static and dynamic. A
    /// name no longer referenced is unsubscribed and its route table dropped, as in Envoy.
    func resubscribeRoutes() {
        var names = staticConfiguration.listeners.reduce(into: Set<String>()) { $0.formUnion(RouteDiscovery.routeNames(of: $1)) }
        // A previous version still serving keeps its route tables.
        for listener in previousListeners.values { names.formUnion(RouteDiscovery.routeNames(of: listener)) }
        var timeouts: [String: Duration?] = [:]
        for (name, value) in types[.listener]!.decoded {
            guard case .listener(let listener) = value else { continue }
            names.formUnion(RouteDiscovery.routeNames(of: listener))
            if let record = types[.listener]!.resources[name] {
                for (route, timeout) in RouteDiscovery.fetchTimeouts(of: record.any) where timeouts[route] == nil {
                    timeouts[route] = timeout
                }
            }
        }
        let previous = types[.route]!.names
        guard names != previous else { return }
        types[.route]!.names = names
        let added = names.subtracting(previous)
        let dropped = previous.subtracting(names)
        routesPending.subtract(dropped)
        for name in added where types[.route]!.decoded[name] == nil { routesPending.insert(name) }
        for name in dropped {
            types[.route]!.resources[name] = nil
            types[.route]!.decoded[name] = nil
        }
        if isDelta {
            emitDelta(.route, subscribe: added, unsubscribe: dropped)
        } else {
            request(.route)
        }
        // One timer per distinct timeout; names that wait forever get none.
        var byTimeout: [Duration: Set<String>] = [:]
        for name in added where routesPending.contains(name) {
            let timeout = timeouts[name] ?? configuration.initialFetchTimeout
            if let timeout { byTimeout[timeout, default: []].insert(name) }
        }
        for (timeout, pending) in byTimeout {
            Task { [weak self] in
                try? await Task.sleep(for: timeout)
                await self?.routeFetchTimedOut(pending)
            }
        }
    }

    func advanceInitialization() {
        if !clustersInitialized, types[.cluster]!.received, warming.isEmpty {
            clustersInitialized = true
            if configuration.listenersViaADS, !types[.listener]!.requested { request(.listener) }
        }
        let listenersDone = !configuration.listenersViaADS || types[.listener]!.received
        if clustersInitialized, listenersDone, routesPending.isEmpty, !reportedInitialized {
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
