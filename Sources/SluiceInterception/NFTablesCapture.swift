import SluiceLinux
import SluiceModel

/// The nftables capture mode: one `inet sluice` table per workload namespace, built with
/// libnftnl and committed through libmnl as one netlink batch — no `nft` binary involved.
public struct NFTablesCapture: CaptureMode {
    public let name = CaptureModeName.nftables

    public init() {}

    public func install(_ target: CaptureTarget) throws {
        let ruleSet = NFTablesRuleSet(options: target.options, proxyMark: target.proxyMark)
        let socket = try open(target)
        if try verification(socket, target, expected: ruleSet) == .installed { return }
        let batch = socket.makeBatch()
        try NFTablesMessages.install(ruleSet, into: batch)
        try target.step("install the inet \(NFTablesRuleSet.tableName) table") { try socket.commit(batch) }
        let after = try verification(socket, target, expected: ruleSet)
        guard after == .installed else {
            throw CaptureError(netnsPath: target.netnsPath, step: "verify after install", detail: after.description)
        }
    }

    public func remove(_ target: CaptureTarget) throws {
        let socket = try open(target)
        guard try dump(socket, target) != nil else { return }
        let batch = socket.makeBatch()
        try NFTablesMessages.remove(table: NFTablesRuleSet.tableName, into: batch)
        try target.step("delete the inet \(NFTablesRuleSet.tableName) table") { try socket.commit(batch) }
    }

    public func verify(_ target: CaptureTarget) throws -> CaptureVerification {
        let ruleSet = NFTablesRuleSet(options: target.options, proxyMark: target.proxyMark)
        return try verification(try open(target), target, expected: ruleSet)
    }

    public func counters(_ target: CaptureTarget) throws -> [CaptureCounter] {
        (try dump(try open(target), target) ?? []).map {
            CaptureCounter(rule: "\($0.chain): \($0.comment ?? "?")", packets: $0.packets, bytes: $0.bytes)
        }
    }

    /// Rules chain by chain, then the elements of every set.
    private func verification(_ socket: NetfilterSocket, _ target: CaptureTarget, expected: NFTablesRuleSet) throws -> CaptureVerification {
        let rules = Self.verification(of: try dump(socket, target), expected: expected)
        guard rules != .absent else { return .absent }
        var details: [String] = []
        if case .drifted(let problems) = rules { details = problems }
        for set in expected.sets {
            let found = try target.step("read set \(set.name)") {
                try socket.dumpSetElements(table: NFTablesRuleSet.tableName, set: set.name)
            }
            guard let found else {
                details.append("set \(set.name) missing")
                continue
            }
            if Set(found) != Set(set.elements) || found.count != set.elements.count {
                details.append("set \(set.name) holds \(found.count) elements, expected \(set.elements.count) (or different ones)")
            }
        }
        return details.isEmpty ? .installed : .drifted(details)
    }

    /// Compares what the kernel holds with the rules Sluice would install, chain by chain.
    static func verification(of rules: [DumpedRule]?, expected: NFTablesRuleSet) -> CaptureVerification {
        guard let rules else { return .absent }
        var details: [String] = []
        for (chain, wanted) in expected.expectedRules.sorted(by: { $0.key < $1.key }) {
            let found = rules.filter { $0.chain == chain }.map { $0.comment ?? "<rule without comment>" }
            guard found != wanted else { continue }
            let missing = wanted.filter { !found.contains($0) }.map { "missing \"\($0)\"" }
            let extra = found.filter { !wanted.contains($0) }.map { "unexpected \"\($0)\"" }
            let order = missing.isEmpty && extra.isEmpty ? ["rules out of order or repeated"] : []
            details.append("chain \(chain): " + (missing + extra + order).joined(separator: ", "))
        }
        let unknown = Set(rules.map(\.chain)).subtracting(expected.expectedRules.keys)
        if !unknown.isEmpty { details.append("unexpected chains: \(unknown.sorted().joined(separator: ", "))") }
        return details.isEmpty ? .installed : .drifted(details)
    }

    private func open(_ target: CaptureTarget) throws -> NetfilterSocket {
        try target.step("open netfilter socket") {
            try NetfilterSocket(namespace: try NetworkNamespace(path: target.netnsPath))
        }
    }

    private func dump(_ socket: NetfilterSocket, _ target: CaptureTarget) throws -> [DumpedRule]? {
        try target.step("read the inet \(NFTablesRuleSet.tableName) table") {
            try socket.dumpRules(table: NFTablesRuleSet.tableName)
        }
    }

}
