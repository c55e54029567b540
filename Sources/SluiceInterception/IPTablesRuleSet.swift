import SluiceModel

/// Sluice's chains in one iptables table for one address family, in the exact form
/// `iptables-save` prints them, so what is installed can be compared line by line.
struct IPTablesRuleSet: Equatable {
    enum Family: String, CaseIterable {
        case ipv4, ipv6

        var loopback: String { self == .ipv4 ? "127.0.0.0/8" : "::1/128" }
        var anyAddress: String { self == .ipv4 ? "0.0.0.0" : "::" }
        var saveCommand: String { self == .ipv4 ? "iptables-save" : "ip6tables-save" }
        var restoreCommand: String { self == .ipv4 ? "iptables-restore" : "ip6tables-restore" }
    }

    struct Chain: Equatable {
        var name: String
        var rules: [String]
    }

    static let outputChain = "SLUICE_OUTPUT"
    static let preroutingChain = "SLUICE_PREROUTING"
    static let divertChain = "SLUICE_DIVERT"

    let family: Family
    let table: String
    /// Rules in built-in chains that enter ours (`-A OUTPUT -j SLUICE_OUTPUT`).
    let jumps: [String]
    let chains: [Chain]

    /// The iptables mode: nat-table REDIRECT. Outbound (OUTPUT): the proxy's own marked
    /// packets, loopback destinations, traffic staying on `lo`, the proxy's ports and excluded
    /// ports/CIDRs return; other TCP goes to the outbound capture port. Inbound (PREROUTING,
    /// unless `inbound` is false): the proxy's and excluded ports return, other TCP goes to the
    /// inbound capture port.
    init(family: Family, options: CaptureOptions, proxyMark: UInt32, inbound: Bool = true) {
        self.family = family
        table = "nat"
        let mark = "0x\(String(proxyMark, radix: 16))/0x\(String(CaptureDefaults.markMask, radix: 16))"
        let bypass = Self.portBypass(Self.outputChain, options)
        let cidrs = options.excludeCIDRs.filter { $0.network.isV4 == (family == .ipv4) }

        var output = ["-A \(Self.outputChain) -m mark --mark \(mark) -j RETURN"]
        output.append("-A \(Self.outputChain) -d \(family.loopback) -j RETURN")
        output.append("-A \(Self.outputChain) -o lo -j RETURN")
        output += bypass
        output += cidrs.map { "-A \(Self.outputChain) -d \($0) -j RETURN" }
        output.append("-A \(Self.outputChain) -p tcp -j REDIRECT --to-ports \(options.outboundPort)")
        var chains = [Chain(name: Self.outputChain, rules: output)]
        var jumps = ["-A OUTPUT -j \(Self.outputChain)"]
        if inbound {
            let prerouting = Self.portBypass(Self.preroutingChain, options)
                + ["-A \(Self.preroutingChain) -p tcp -j REDIRECT --to-ports \(options.inboundPort)"]
            chains.insert(Chain(name: Self.preroutingChain, rules: prerouting), at: 0)
            jumps.insert("-A PREROUTING -j \(Self.preroutingChain)", at: 0)
        }
        self.chains = chains
        self.jumps = jumps
    }

    /// The tproxy mode's inbound half, in the mangle table: new inbound TCP connections are
    /// handed to the inbound capture port by TPROXY (no NAT, so the proxy sees the real
    /// destination as its local address); packets of established connections get the
    /// policy-routing mark so they are delivered locally. Outbound, the mark the proxy puts on
    /// its transparent connections to the application is saved on the connection and restored
    /// on the application's replies, which the same policy route brings back to the proxy.
    init(transparentInboundFor family: Family, options: CaptureOptions, routingMark: UInt32) {
        self.family = family
        table = "mangle"
        let mark = "0x\(String(routingMark, radix: 16))"
        let prerouting = ["-A \(Self.preroutingChain) -i lo -j RETURN"]
            + Self.portBypass(Self.preroutingChain, options)
            + [
                "-A \(Self.preroutingChain) -p tcp -m conntrack --ctstate RELATED,ESTABLISHED -j \(Self.divertChain)",
                "-A \(Self.preroutingChain) -p tcp -j TPROXY --on-port \(options.inboundPort) --on-ip \(family.anyAddress) --tproxy-mark \(mark)/\(mark)",
            ]
        let divert = ["-A \(Self.divertChain) -j MARK --set-xmark \(mark)/\(mark)", "-A \(Self.divertChain) -j ACCEPT"]
        let output = [
            "-A \(Self.outputChain) -m mark --mark \(mark)/\(mark) -j CONNMARK --save-mark --nfmask \(mark) --ctmask \(mark)",
            "-A \(Self.outputChain) -m connmark --mark \(mark)/\(mark) -j CONNMARK --restore-mark --nfmask \(mark) --ctmask \(mark)",
        ]
        chains = [
            Chain(name: Self.preroutingChain, rules: prerouting), Chain(name: Self.divertChain, rules: divert),
            Chain(name: Self.outputChain, rules: output),
        ]
        jumps = ["-A PREROUTING -p tcp -j \(Self.preroutingChain)", "-A OUTPUT -p tcp -j \(Self.outputChain)"]
    }

    /// RETURN rules for the proxy's own ports and the excluded ports.
    private static func portBypass(_ chain: String, _ options: CaptureOptions) -> [String] {
        (portGroups([options.outboundPort, options.inboundPort]) + portGroups(options.excludePorts))
            .map { "-A \(chain) -p tcp -m multiport --dports \($0) -j RETURN" }
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
        var lines = ["*\(table)"]
        lines += chains.map { ":\($0.name) - [0:0]" }
        for jump in jumps {
            let count = current.rules(in: Self.builtin(of: jump)).filter { $0 == jump }.count
            if count == 0 { lines.append(jump) }
            if count > 1 { lines += Array(repeating: "-D" + jump.dropFirst(2), count: count - 1) }
        }
        lines += chains.flatMap(\.rules)
        lines.append("COMMIT")
        return lines.joined(separator: "\n") + "\n"
    }

    /// The input that removes every jump into a Sluice chain and every Sluice chain of
    /// `current`'s table, or nil when there are none.
    static func removeScript(current: IPTablesState) -> String? {
        var lines: [String] = []
        for (chain, rules) in current.rulesByChain.sorted(by: { $0.key > $1.key }) where !isOurs(chain) {
            for rule in rules where rule.contains(" -j SLUICE_") {
                lines.append("-D" + rule.dropFirst(2))
            }
        }
        let ours = current.userChains.filter(isOurs).sorted()
        lines += ours.map { "-F \($0)" }
        lines += ours.map { "-X \($0)" }
        guard !lines.isEmpty else { return nil }
        return (["*\(current.table)"] + lines + ["COMMIT"]).joined(separator: "\n") + "\n"
    }

    func verify(_ current: IPTablesState) -> CaptureVerification {
        var problems: [String] = []
        var present = false
        for jump in jumps {
            let count = current.rules(in: Self.builtin(of: jump)).filter { $0 == jump }.count
            if count > 0 { present = true }
            if count != 1 { problems.append("\(family.rawValue) \(table): \(count) × \"\(jump)\"") }
        }
        for chain in chains {
            if current.userChains.contains(chain.name) { present = true } else {
                problems.append("\(family.rawValue) \(table): chain \(chain.name) missing")
                continue
            }
            let installed = current.rules(in: chain.name)
            if installed != chain.rules {
                problems.append("\(family.rawValue) \(table): chain \(chain.name) differs (has \(installed.count) rules, expected \(chain.rules.count))")
            }
        }
        let strays = current.userChains.filter { Self.isOurs($0) && !chains.map(\.name).contains($0) }
        problems += strays.map { "\(family.rawValue) \(table): unexpected chain \($0)" }
        if problems.isEmpty { return .installed }
        return present || !strays.isEmpty ? .drifted(problems) : .absent
    }

    private static func isOurs(_ chain: String) -> Bool { chain.hasPrefix("SLUICE_") }

    /// `-A OUTPUT …` → `OUTPUT`.
    private static func builtin(of rule: String) -> String {
        String(rule.dropFirst(3).prefix { $0 != " " })
    }
}

/// One table as `iptables-save -t TABLE` printed it.
struct IPTablesState: Equatable {
    var table: String
    /// Rule lines (`-A CHAIN …`) by chain, in order.
    var rulesByChain: [String: [String]] = [:]
    /// User-defined chains (declared with policy `-`).
    var userChains: Set<String> = []
    /// Whether the output had the table at all.
    var hasTable = false

    init(saveOutput: String, table: String = "nat") {
        self.table = table
        var inTable = false
        for rawLine in saveOutput.split(separator: "\n") {
            let line = String(rawLine)
            if line.hasPrefix("*") {
                inTable = line == "*\(table)"
                if inTable { hasTable = true }
                continue
            }
            guard inTable else { continue }
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

    /// No rules and no user chains: an empty table.
    var isEmpty: Bool { rulesByChain.values.allSatisfy(\.isEmpty) && userChains.isEmpty }
}
