import SluiceModel
@testable import SluiceInterception
import Testing

@Suite struct NFTablesRuleSetTests {
    @Test func rulesMirrorTheIPTablesPolicyInOneInetTable() {
        let rules = NFTablesRuleSet(options: CaptureOptions(excludePorts: [9090, 22, 9090]), proxyMark: 0x539)
        #expect(rules.chains.map(\.name) == ["prerouting", "output"])
        #expect(rules.expectedRules["output"] == [
            "meta mark & 0xfff == 0x539 counter return",
            "meta nfproto ipv4 ip daddr 127.0.0.0/8 counter return",
            "meta nfproto ipv6 ip6 daddr ::1/128 counter return",
            "oifname lo counter return",
            "meta l4proto tcp tcp dport @proxy_ports counter return",
            "meta l4proto tcp tcp dport @excluded_ports counter return",
            "meta nfproto ipv4 ip daddr @excluded_ipv4 counter return",
            "meta nfproto ipv6 ip6 daddr @excluded_ipv6 counter return",
            "meta l4proto tcp counter redirect to :15001",
        ])
        #expect(rules.expectedRules["prerouting"]?.last == "meta l4proto tcp counter redirect to :15006")
        #expect(rules.sets.first { $0.name == "excluded_ports" }?.ports == [22, 9090])
    }

    @Test func overlappingExcludedRangesCollapseForTheIntervalSet() {
        let ranges = ["10.0.0.0/8", "10.1.0.0/16", "192.168.1.1/32", "10.0.0.0/8"].map { CIDRRange($0)! }
        #expect(NFTablesRuleSet.disjoint(ranges).map(\.description) == ["10.0.0.0/8", "192.168.1.1/32"])
    }

    @Test func intervalEndsAndMasksInNetworkOrder() {
        #expect(CIDRRange("10.1.0.0/16")!.firstAddressAfter == [10, 2, 0, 0])
        #expect(CIDRRange("10.255.255.0/24")!.firstAddressAfter == [11, 0, 0, 0])
        #expect(CIDRRange("0.0.0.0/0")!.firstAddressAfter == nil)
        #expect(CIDRRange("255.255.255.255/32")!.firstAddressAfter == nil)
        #expect(CIDRRange("fd00::/8")!.firstAddressAfter == [0xfe] + [UInt8](repeating: 0, count: 15))
        #expect(CIDRRange("10.0.0.0/12")!.maskBytes == [255, 240, 0, 0])
    }
}
