import SluiceModel
import Testing

@Suite struct ServiceAddressesTests {
    private func listener(_ name: String, _ address: String, bindToPort: Bool, capture: CaptureRole? = nil) -> ListenerConfig {
        ListenerConfig(
            name: name, addresses: [ListenerAddress(endpoint: SocketEndpoint(address)!)], bindToPort: bindToPort, capture: capture)
    }

    @Test func specificHandOffListenersAreServicesAndWildcardsAreNot() {
        let configuration = ProxyConfiguration(listeners: [
            listener("outbound", "0.0.0.0:15001", bindToPort: true, capture: .outbound),
            listener("10.96.0.10_53", "10.96.0.10:53", bindToPort: false),
            listener("0.0.0.0_8080", "0.0.0.0:8080", bindToPort: false),
            listener("[::]_9090", "[::]:9090", bindToPort: false),
            listener("fd96::1_80", "[fd96::1]:80", bindToPort: false),
            listener("bound", "10.96.0.11:80", bindToPort: true),
            listener("again", "10.96.0.10:53", bindToPort: false),
        ])
        #expect(configuration.serviceAddresses == [SocketEndpoint("10.96.0.10:53")!, SocketEndpoint("[fd96::1]:80")!])
    }
}
