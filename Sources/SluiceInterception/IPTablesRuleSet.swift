import SluiceModel

/// The nat-table rules of the iptables mode for one address family, in the exact form
/// `iptables-save` prints them, so what is installed can be compared line by line.
///
/// Outbound (OUTPUT): the proxy's own marked packets, loopback destinations, traffic staying on
/// `lo`, the proxy's ports and excluded ports/CIDRs return; other TCP is redirected to the
/// outbound capture port. Inbound (PREROUTING): the proxy's ports and excluded ports return;
/// other TCP is redirected to the inbound capture port.
struct IPTablesRuleSet: Equatable {
    enum Family: String, CaseIterable {
        case ipv4, ipv6

        var loopback: String { self == .ipv4 ? "127.0.0.0/8" : "::1/128" }
        var saveCommand: String { self == .ipv4 ? "iptables-save" : "ip6tables-save" }
        var restoreCommand: String { self == .ipv4 ? "iptables-restore" : "ip6tables-restore" }
    }

    static let outputChain = "SLUICE_OUTPUT"
    static let preroutingChain = "SLUICE_PREROUTING"
    /// Built-in chain → the chain it jumps to.
    static let jumps: [(builtin: String, chain: String)] = [("PREROUTING", preroutingChain), ("OUTPUT", outputChain)]

    let family: Family
    /// Rule lines per Sluice chain, in order.
    let chains: [(name: String, rules: [String])]

    static func == (lhs: IPTablesRuleSet, rhs: IPTablesRuleSet) -> Bool {
        lhs.family == rhs.family && lhs.chains.map(\.name) == rhs.chains.map(\.name)
            && lhs.chains.map(\.rules) == rhs.chains.map(\.rules)
    }

    init(family: Family, options: CaptureOptions, proxyMark: UInt32) {
        self.family = family
        let mark = "0x\(String(proxyMark, radix: 16))/0x\(String(CaptureDefaults.markMask, radix: 16))"
        let proxyPorts = Self.portGroups([options.outboundPort, options.inboundPort])
        let excludedPorts = Self.portGroups(options.excludePorts)
        let cidrs = options.excludeCIDRs.filter { $0.network.isV4 == (family == .ipv4) }

        var output = ["-A \(Self.outputChain) -m mark --mark \(mark) -j RETURN"]
        output.append("-A \(Self.outputChain) -d \(family.loopback) -j RETURN")
        output.append("-A \(Self.outputChain) -o lo -j RETURN")
        output += proxyPorts.map { "-A \(Self.outputChain) -p tcp -m multiport --dports \($0) -j RETURN" }
        output += excludedPorts.map { "-A \(Self.outputChain) -p tcp -m multiport --dports \($0) -j RETURN" }
        output += cidrs.map { "-A \(Self.outputChain) -d \($0) -j RETURN" }
        output.append("-A \(Self.outputChain) -p tcp -j REDIRECT --to-ports \(options.outboundPort)")

        var prerouting = proxyPorts.map { "-A \(Self.preroutingChain) -p tcp -m multiport --dports \($0) -j RETURN" }
        prerouting += excludedPorts.map { "-A \(Self.preroutingChain) -p tcp -m multiport --dports \($0) -j RETURN" }
        prerouting.append("-A \(Self.preroutingChain) -p tcp -j REDIRECT --to-ports \(options.inboundPort)")

        chains = [(Self.preroutingChain, prerouting), (Self.outputChain, output)]
    }

    /// `multiport` takes at most 15 ports per rule.
    static func portGroups(_ ports: [UInt16]) -> [String] {
        let unique = Array(Set(ports)).sorted()
        return stride(from: 0, to: unique.count, by: 15).map { start in
            unique[start..<min(start + 15, unique.count)].map(String.init).joined(separator: ",")
        }
    }

    /// The `iptables-restore --noflush` input that makes `current` equal to this rule set, or
    /// nil when it already is. Declaring a chain creates or flushes it, so our chains are
    /// rewritten whole; jumps are added only where missing and duplicates removed.
    func installScript(current: IPTablesState) -> String? {
        if verify(current) == .installed { return nil }
        var lines = ["*nat"]
        lines += chains.map { ":\($0.name) - [0:0]" }
        for jump in Self.jumps {
            let rule = "-A \(jump.builtin) -j \(jump.chain)"
            let count = current.rules(in: jump.builtin).filter { $0 == rule }.count
            if count == 0 { lines.append(rule) }
            if count > 1 { lines += Array(repeating: "-D \(jump.builtin) -j \(jump.chain)", count: count - 1) }
        }
        lines += chains.flatMap(\.rules)
        lines.append("COMMIT")
        return lines.joined(separator: "\n") + "\n"
    }

    /// The input that removes every jump and chain of ours, or nil when none is present.
    static func removeScript(current: IPTablesState) -> String? {
        var lines: [String] = []
        for jump in jumps {
            let rule = "-A \(jump.builtin) -j \(jump.chain)"
            for _ in current.rules(in: jump.builtin).filter({ $0 == rule }) {
                lines.append("-D \(jump.builtin) -j \(jump.chain)")
            }
        }
        // Any other rule jumping into our chains would block their deletion; remove those too.
        for (chain, rules) in current.rulesByChain where !chain.hasPrefix("SLUICE_") {
            for rule in rules where rule.hasSuffix(" -j \(outputChain)") || rule.hasSuffix(" -j \(preroutingChain)") {
                let deletion = "-D" + rule.dropFirst(2)
                if !lines.contains(deletion) { lines.append(deletion) }
            }
        }
        let ours = current.userChains.filter { $0.hasPrefix("SLUICE_") }.sorted()
        lines += ours.map { "-F \($0)" }
        lines += ours.map { "-X \($0)" }
        guard !lines.isEmpty else { return nil }
        return (["*nat"] + lines + ["COMMIT"]).joined(separator: "\n") + "\n"
    }

    func verify(_ current: IPTablesState) -> CaptureVerification {
        var problems: [String] = []
        var present = false
        for jump in Self.jumps {
            let count = current.rules(in: jump.builtin).filter { $0 == "-A \(jump.builtin) -j \(jump.chain)" }.count
            if count > 0 { present = true }
            if count != 1 { problems.append("\(family.rawValue): \(count) jumps from \(jump.builtin) to \(jump.chain)") }
        }
        for chain in chains {
            if current.userChains.contains(chain.name) { present = true } else {
                problems.append("\(family.rawValue): chain \(chain.name) missing")
                continue
            }
            let installed = current.rules(in: chain.name)
            if installed != chain.rules {
                problems.append("\(family.rawValue): chain \(chain.name) differs (has \(installed.count) rules, expected \(chain.rules.count))")
            }
        }
        let strays = current.userChains.filter { $0.hasPrefix("SLUICE_") && !chains.map(\.name).contains($0) }
        problems += strays.map { "\(family.rawValue): unexpected chain \($0)" }
        if problems.isEmpty { return .installed }
        return present || !strays.isEmpty ? .drifted(problems) : .absent
    }
}

/// The nat table as `iptables-save -t nat` printed it.
struct IPTablesState: Equatable {
    /// Rule lines (`-A CHAIN …`) by chain, in order.
    var rulesByChain: [String: [String]] = [:]
    /// User-defined chains (declared with policy `-`).
    var userChains: Set<String> = []
    /// Whether the output had a nat table at all.
    var hasNatTable = false

    init(saveOutput: String) {
        var inNat = false
        for rawLine in saveOutput.split(separator: "\n") {
            let line = String(rawLine)
            if line.hasPrefix("*") {
                inNat = line == "*nat"
                if inNat { hasNatTable = true }
                continue
            }
            guard inNat else { continue }
            if line.hasPrefix(":") {
                let parts = line.dropFirst().split(separator: " ")
                if parts.count >= 2, parts[1] == "-" { userChains.insert(String(parts[0])) }
            } else if line.hasPrefix("-A ") {
                let chain = String(line.dropFirst(3).prefix { $0 != " " })
                rulesByChain[chain, default: []].append(line)
            }
        }
    }

    func rules(in chain: String) -> [String] { rulesByChain[chain] ?? [] }

    /// No rules and no user chains: an empty nat table.
    var isEmpty: Bool { rulesByChain.values.allSatisfy(\.isEmpty) && userChains.isEmpty }
}
