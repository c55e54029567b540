import SluiceModel
@testable import SluiceInterception
import Testing

@Suite struct IPTablesRuleSetTests {
    let options = CaptureOptions(excludePorts: [22, 9090], excludeCIDRs: [CIDRRange("10.9.0.0/16")!, CIDRRange("fd99::/64")!])

    @Test func ipv4RulesInIPTablesSaveForm() {
        let rules = IPTablesRuleSet(family: .ipv4, options: options, proxyMark: 0x539)
        #expect(rules.chains.map(\.name) == ["SLUICE_PREROUTING", "SLUICE_OUTPUT"])
        #expect(rules.chains[1].rules == [
            "-A SLUICE_OUTPUT -m mark --mark 0x539/0xfff -j RETURN",
            "-A SLUICE_OUTPUT -d 127.0.0.0/8 -j RETURN",
            "-A SLUICE_OUTPUT -o lo -j RETURN",
            "-A SLUICE_OUTPUT -p tcp -m multiport --dports 15001,15006 -j RETURN",
            "-A SLUICE_OUTPUT -p tcp -m multiport --dports 22,9090 -j RETURN",
            "-A SLUICE_OUTPUT -d 10.9.0.0/16 -j RETURN",
            "-A SLUICE_OUTPUT -p tcp -j REDIRECT --to-ports 15001",
        ])
        #expect(rules.chains[0].rules == [
            "-A SLUICE_PREROUTING -p tcp -m multiport --dports 15001,15006 -j RETURN",
            "-A SLUICE_PREROUTING -p tcp -m multiport --dports 22,9090 -j RETURN",
            "-A SLUICE_PREROUTING -p tcp -j REDIRECT --to-ports 15006",
        ])
    }

    @Test func ipv6RulesUseIPv6LoopbackAndRanges() {
        let rules = IPTablesRuleSet(family: .ipv6, options: options, proxyMark: 0x539)
        #expect(rules.chains[1].rules.contains("-A SLUICE_OUTPUT -d ::1/128 -j RETURN"))
        #expect(rules.chains[1].rules.contains("-A SLUICE_OUTPUT -d fd99::/64 -j RETURN"))
        #expect(!rules.chains[1].rules.contains { $0.contains("10.9.0.0") })
    }

    @Test func manyExcludedPortsAreSplitIntoMultiportGroups() {
        let ports = (1...40).map { UInt16($0) }
        #expect(IPTablesRuleSet.portGroups(ports).count == 3)
        #expect(IPTablesRuleSet.portGroups([80, 80, 22]) == ["22,80"])
    }

    @Test func installIsANoOpWhenAlreadyInstalled() {
        let rules = IPTablesRuleSet(family: .ipv4, options: options, proxyMark: 0x539)
        let empty = IPTablesState(saveOutput: "")
        let script = rules.installScript(current: empty)!
        #expect(script.hasPrefix("*nat\n:SLUICE_PREROUTING - [0:0]\n:SLUICE_OUTPUT - [0:0]\n-A PREROUTING -j SLUICE_PREROUTING\n"))
        #expect(script.hasSuffix("COMMIT\n"))
        let installed = IPTablesState(saveOutput: saved(rules, jumps: 1))
        #expect(rules.verify(installed) == .installed)
        #expect(rules.installScript(current: installed) == nil)
    }

    @Test func duplicateJumpsAreRepaired() {
        let rules = IPTablesRuleSet(family: .ipv4, options: options, proxyMark: 0x539)
        let doubled = IPTablesState(saveOutput: saved(rules, jumps: 2))
        guard case .drifted = rules.verify(doubled) else {
            Issue.record("two jumps must count as drift")
            return
        }
        let script = rules.installScript(current: doubled)!
        #expect(script.contains("-D OUTPUT -j SLUICE_OUTPUT"))
        #expect(!script.contains("-A OUTPUT -j SLUICE_OUTPUT"))
    }

    @Test func removalDeletesJumpsAndChainsOnly() {
        let rules = IPTablesRuleSet(family: .ipv4, options: options, proxyMark: 0x539)
        let state = IPTablesState(saveOutput: saved(rules, jumps: 1) + "\n-A OUTPUT -d 1.2.3.4/32 -j ACCEPT")
        let script = IPTablesRuleSet.removeScript(current: state)!
        #expect(script == """
            *nat
            -D PREROUTING -j SLUICE_PREROUTING
            -D OUTPUT -j SLUICE_OUTPUT
            -F SLUICE_OUTPUT
            -F SLUICE_PREROUTING
            -X SLUICE_OUTPUT
            -X SLUICE_PREROUTING
            COMMIT

            """)
        #expect(IPTablesRuleSet.removeScript(current: IPTablesState(saveOutput: "*nat\n:OUTPUT ACCEPT [0:0]\nCOMMIT")) == nil)
        #expect(rules.verify(IPTablesState(saveOutput: "")) == .absent)
    }

    /// What iptables-save prints for `rules` installed with `jumps` copies of each jump.
    private func saved(_ rules: IPTablesRuleSet, jumps: Int) -> String {
        var lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":SLUICE_OUTPUT - [0:0]", ":SLUICE_PREROUTING - [0:0]"]
        for _ in 0..<jumps { lines.append("-A PREROUTING -j SLUICE_PREROUTING") }
        for _ in 0..<jumps { lines.append("-A OUTPUT -j SLUICE_OUTPUT") }
        lines += rules.chains.flatMap(\.rules)
        lines.append("COMMIT")
        return lines.joined(separator: "\n")
    }
}
