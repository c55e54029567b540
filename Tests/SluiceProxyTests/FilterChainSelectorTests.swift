import SluiceModel
import SluiceProxy
import Testing

@Suite struct FilterChainSelectorTests {
    private func chain(_ match: FilterChainMatch) -> FilterChain {
        FilterChain(match: match, filters: [.tcpProxy(TCPProxyConfig(statPrefix: "s", route: .cluster("c")))])
    }

    private func connection(to destination: String, from source: String = "192.168.1.1:40000") -> ConnectionMetadata {
        ConnectionMetadata(destination: SocketEndpoint(destination)!, source: SocketEndpoint(source)!)
    }

    @Test func destinationPortIsMoreSpecificThanNone() {
        let selector = FilterChainSelector(
            chains: [chain(FilterChainMatch()), chain(FilterChainMatch(destinationPort: 80))], hasDefaultChain: false)
        #expect(selector.select(connection(to: "10.0.0.1:80")) == .chain(1))
        #expect(selector.select(connection(to: "10.0.0.1:81")) == .chain(0))
    }

    @Test func longestPrefixWins() {
        let selector = FilterChainSelector(
            chains: [
                chain(FilterChainMatch(prefixRanges: [CIDRRange("10.0.0.0/8")!])),
                chain(FilterChainMatch(prefixRanges: [CIDRRange("10.1.0.0/16")!])),
            ],
            hasDefaultChain: true)
        #expect(selector.select(connection(to: "10.1.2.3:80")) == .chain(1))
        #expect(selector.select(connection(to: "10.2.2.3:80")) == .chain(0))
        #expect(selector.select(connection(to: "11.0.0.1:80")) == .defaultChain)
    }

    @Test func noBacktrackingToLessSpecificChains() {
        // Port 80 narrows to the second chain; its source-port criterion then fails. Envoy does
        // not fall back to the catch-all chain: the default chain is used.
        let selector = FilterChainSelector(
            chains: [chain(FilterChainMatch()), chain(FilterChainMatch(destinationPort: 80, sourcePorts: [1234]))],
            hasDefaultChain: true)
        #expect(selector.select(connection(to: "10.0.0.1:80", from: "1.2.3.4:1234")) == .chain(1))
        #expect(selector.select(connection(to: "10.0.0.1:80", from: "1.2.3.4:5555")) == .defaultChain)
    }

    @Test func sourceTypeAndSourcePrefix() {
        let selector = FilterChainSelector(
            chains: [
                chain(FilterChainMatch(sourceType: .sameIPOrLoopback)),
                chain(FilterChainMatch(sourcePrefixRanges: [CIDRRange("192.168.0.0/16")!])),
                chain(FilterChainMatch()),
            ],
            hasDefaultChain: false)
        #expect(selector.select(connection(to: "10.0.0.1:80", from: "127.0.0.1:5000")) == .chain(0))
        #expect(selector.select(connection(to: "10.0.0.1:80", from: "192.168.3.3:5000")) == .chain(1))
        #expect(selector.select(connection(to: "10.0.0.1:80", from: "172.16.0.1:5000")) == .chain(2))
    }

    @Test func tlsChainsNeverMatchPlainConnections() {
        let selector = FilterChainSelector(
            chains: [chain(FilterChainMatch(transportProtocol: "tls")), chain(FilterChainMatch(transportProtocol: "raw_buffer"))],
            hasDefaultChain: false)
        #expect(selector.select(connection(to: "10.0.0.1:80")) == .chain(1))
    }

    @Test func nothingMatchesWithoutDefault() {
        let selector = FilterChainSelector(chains: [chain(FilterChainMatch(destinationPort: 443))], hasDefaultChain: false)
        #expect(selector.select(connection(to: "10.0.0.1:80")) == nil)
    }
}
