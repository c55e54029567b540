import Foundation
import SluiceLinux
import SluiceModel
import Testing

@testable import SluiceProxy

@Suite struct InheritedSocketsTests {
    @Test func onlyListeningSocketsOfTheNamedAddressAreClaimed() throws {
        let address = SocketEndpoint(address: .v4(0x7f00_0001), port: 0)
        let listening = try SocketFactory(namespace: .home, mark: nil).makeListeningSocket(ListenerAddress(endpoint: address))
        var pair: [CInt] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
        close(pair[1])
        let home = NetworkNamespace.home.identity
        let other = SocketEndpoint(address: .v4(0x7f00_0001), port: 1)
        let sockets = InheritedSockets([
            InheritedListener(namespace: home, address: address, descriptor: listening),
            InheritedListener(namespace: home, address: other, descriptor: pair[0]),
        ])
        #expect(sockets.rejected == ["\(other) in \(home)"], "a connected Unix socket is not a TCP listener")
        #expect(sockets.claim(namespace: home, address: other) == nil)
        #expect(sockets.claim(namespace: NetworkNamespace.Identity(device: 0, inode: 1), address: address) == nil,
                "another namespace's listener is not this one")
        let claimed = try #require(sockets.claim(namespace: home, address: address))
        #expect(claimed == listening && sockets.claimed == 1)
        #expect(sockets.closeUnclaimed().isEmpty)
        close(claimed)
    }
}
