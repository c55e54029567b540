import SluiceModel
import Testing

@Suite struct AddressTests {
    @Test(arguments: ["10.1.2.3", "0.0.0.0", "255.255.255.255", "::", "::1", "fd00::1", "2001:db8::8:800:200c:417a"])
    func ipAddressRoundTrips(_ text: String) throws {
        let address = try #require(IPAddress(text))
        #expect(address.description == text)
    }

    @Test(arguments: ["", "1.2.3", "1.2.3.4.5", "300.1.1.1", "::g", "example.com", "10.0.0.1%eth0"])
    func malformedAddressesAreRejected(_ text: String) {
        #expect(IPAddress(text) == nil)
    }

    @Test func classifiesAddresses() throws {
        #expect(try #require(IPAddress("127.9.9.9")).isLoopback)
        #expect(try #require(IPAddress("::1")).isLoopback)
        #expect(try #require(IPAddress("::")).isUnspecified)
        #expect(try #require(IPAddress("::ffff:10.0.0.1")).unmappingIPv4 == IPAddress("10.0.0.1"))
    }

    @Test func cidrContainment() throws {
        let range = try #require(CIDRRange("10.1.0.0/16"))
        #expect(range.contains(try #require(IPAddress("10.1.200.3"))))
        #expect(!range.contains(try #require(IPAddress("10.2.0.1"))))
        #expect(range.contains(try #require(IPAddress("::ffff:10.1.0.1"))), "IPv4-mapped addresses match IPv4 ranges")
        let v6 = try #require(CIDRRange("fd77::/64"))
        #expect(v6.contains(try #require(IPAddress("fd77::1234"))))
        #expect(!v6.contains(try #require(IPAddress("fd78::1"))))
        #expect(CIDRRange("10.1.2.3/8")?.description == "10.0.0.0/8", "host bits are cleared")
        #expect(CIDRRange("10.0.0.0/33") == nil)
        #expect(CIDRRange("10.0.0.1")?.prefixLength == 32)
        #expect(CIDRRange("::/0")?.contains(try #require(IPAddress("2001:db8::1"))) == true)
    }

    @Test func socketEndpointFormatting() throws {
        #expect(SocketEndpoint("10.0.0.1:80")?.description == "10.0.0.1:80")
        #expect(SocketEndpoint("[fd00::1]:443")?.description == "[fd00::1]:443")
        #expect(SocketEndpoint("10.0.0.1:99999") == nil)
    }
}
