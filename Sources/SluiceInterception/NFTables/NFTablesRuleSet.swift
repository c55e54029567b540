import SluiceModel

/// The nftables mode's ruleset for one workload namespace: one `inet sluice` table that serves
/// IPv4 and IPv6 at once, with named sets for the exclusions and a counter on every rule.
///
/// It is the same policy as the iptables mode (outbound: the proxy's marked packets, loopback,
/// the proxy's ports and the exclusions return, other TCP is redirected to the outbound port;
/// inbound: the proxy's ports and excluded ports return, other TCP goes to the inbound port).
/// Every rule carries its own text as its comment, which is how `verify` recognises it.
struct NFTablesRuleSet: Equatable {
    static let tableName = "sluice"

    enum Family: Equatable {
        case ipv4, ipv6
    }

    /// One match, counter or verdict of a rule, as the kernel evaluates it.
    enum Statement: Equatable {
        case transportIsTCP
        case networkIs(Family)
        case markMatches(value: UInt32, mask: UInt32)
        case outputInterface(String)
        case destinationIn(CIDRRange)
        case destinationPortInSet(String)
        case destinationInSet(String, Family)
        case counter
        case returnFromChain
        case redirect(toPort: UInt16)
        /// `ct state new`: needs conntrack in the namespace (the IPVS mode's conntrack demand).
        case conntrackStateNew

        var text: String {
            switch self {
            case .transportIsTCP: return "meta l4proto tcp"
            case .networkIs(let family): return "meta nfproto \(family == .ipv4 ? "ipv4" : "ipv6")"
            case .markMatches(let value, let mask): return "meta mark & \(hex(mask)) == \(hex(value))"
            case .outputInterface(let name): return "oifname \(name)"
            case .destinationIn(let range): return "\(range.network.isV4 ? "ip" : "ip6") daddr \(range)"
            case .destinationPortInSet(let set): return "tcp dport @\(set)"
            case .destinationInSet(let set, let family): return "\(family == .ipv4 ? "ip" : "ip6") daddr @\(set)"
            case .counter: return "counter"
            case .returnFromChain: return "return"
            case .redirect(let port): return "redirect to :\(port)"
            case .conntrackStateNew: return "ct state new"
            }
        }

        private func hex(_ value: UInt32) -> String { "0x" + String(value, radix: 16) }
    }

    struct Rule: Equatable {
        var statements: [Statement]
        /// The rule in nft syntax; stored as the rule's comment.
        var text: String { statements.map(\.text).joined(separator: " ") }
    }

    struct Chain: Equatable {
        enum Hook: Equatable { case prerouting, output }
        var name: String
        /// nil: a regular chain, evaluated only when a rule jumps to it.
        var hook: Hook?
        /// nat priority (dstnat), as iptables' nat table uses.
        var priority: Int32 = -100
        var rules: [Rule]
    }

    struct NamedSet: Equatable {
        enum Key: Equatable { case port, ipv4, ipv6 }
        var name: String
        var key: Key
        var ports: [UInt16] = []
        var ranges: [CIDRRange] = []

        /// One element as the kernel stores it: key bytes in network order.
        struct Element: Hashable {
            var key: [UInt8]
            /// Interval sets hold a range as its first address plus, flagged as an interval
            /// end, the first address after it (absent when the range reaches the top).
            var intervalEnd = false
        }

        var elements: [Element] {
            ports.map { Element(key: withUnsafeBytes(of: $0.bigEndian) { Array($0) }) }
                + ranges.flatMap { range in
                    [Element(key: range.network.networkBytes)]
                        + (range.firstAddressAfter.map { [Element(key: $0, intervalEnd: true)] } ?? [])
                }
        }
    }

    static let proxyPortsSet = "proxy_ports"
    static let excludedPortsSet = "excluded_ports"
    static let excludedIPv4Set = "excluded_ipv4"
    static let excludedIPv6Set = "excluded_ipv6"

    /// The `inet` table holding everything.
    var table: String
    var sets: [NamedSet]
    var chains: [Chain]

    init(table: String, sets: [NamedSet], chains: [Chain]) {
        self.table = table
        self.sets = sets
        self.chains = chains
    }

    /// The capture ruleset of the nftables mode.
    init(options: CaptureOptions, proxyMark: UInt32) {
        table = Self.tableName
        let v4 = options.excludeCIDRs.filter { $0.network.isV4 }
        let v6 = options.excludeCIDRs.filter { !$0.network.isV4 }
        sets = [
            NamedSet(name: Self.proxyPortsSet, key: .port, ports: Array(Set([options.outboundPort, options.inboundPort])).sorted()),
            NamedSet(name: Self.excludedPortsSet, key: .port, ports: Array(Set(options.excludePorts)).sorted()),
            NamedSet(name: Self.excludedIPv4Set, key: .ipv4, ranges: Self.disjoint(v4)),
            NamedSet(name: Self.excludedIPv6Set, key: .ipv6, ranges: Self.disjoint(v6)),
        ]
        func rule(_ statements: Statement...) -> Rule { Rule(statements: statements) }
        let prerouting = [
            rule(.transportIsTCP, .destinationPortInSet(Self.proxyPortsSet), .counter, .returnFromChain),
            rule(.transportIsTCP, .destinationPortInSet(Self.excludedPortsSet), .counter, .returnFromChain),
            rule(.transportIsTCP, .counter, .redirect(toPort: options.inboundPort)),
        ]
        let output = [
            rule(.markMatches(value: proxyMark & CaptureDefaults.markMask, mask: CaptureDefaults.markMask), .counter, .returnFromChain),
            rule(.networkIs(.ipv4), .destinationIn(CIDRRange("127.0.0.0/8")!), .counter, .returnFromChain),
            rule(.networkIs(.ipv6), .destinationIn(CIDRRange("::1/128")!), .counter, .returnFromChain),
            rule(.outputInterface("lo"), .counter, .returnFromChain),
            rule(.transportIsTCP, .destinationPortInSet(Self.proxyPortsSet), .counter, .returnFromChain),
            rule(.transportIsTCP, .destinationPortInSet(Self.excludedPortsSet), .counter, .returnFromChain),
            rule(.networkIs(.ipv4), .destinationInSet(Self.excludedIPv4Set, .ipv4), .counter, .returnFromChain),
            rule(.networkIs(.ipv6), .destinationInSet(Self.excludedIPv6Set, .ipv6), .counter, .returnFromChain),
            rule(.transportIsTCP, .counter, .redirect(toPort: options.outboundPort)),
        ]
        chains = [
            Chain(name: "prerouting", hook: .prerouting, rules: prerouting),
            Chain(name: "output", hook: .output, rules: output),
        ]
    }

    /// The rule texts per chain, in order: what a correct installation reads back as.
    var expectedRules: [String: [String]] {
        Dictionary(uniqueKeysWithValues: chains.map { ($0.name, $0.rules.map(\.text)) })
    }

    /// An interval set rejects overlapping elements, so ranges inside another are dropped.
    static func disjoint(_ ranges: [CIDRRange]) -> [CIDRRange] {
        let sorted = Set(ranges).sorted { $0.prefixLength < $1.prefixLength }
        var kept: [CIDRRange] = []
        for range in sorted where !kept.contains(where: { $0.contains(range.network) }) {
            kept.append(range)
        }
        return kept.sorted { $0.network.description < $1.network.description }
    }
}
