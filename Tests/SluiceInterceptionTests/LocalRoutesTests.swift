import Foundation
import SluiceLinux
import SluiceModel
@testable import SluiceInterception
import Testing

/// Sluice's local host routes in a scratch namespace (needs root; works on any kernel).
@Suite(.serialized) struct LocalRoutesTests {
    @Test func addListAndDeleteBothFamilies() throws {
        try #require(geteuid() == 0, "needs root to create a network namespace")
        // Named like the end-to-end namespaces, so Scripts/test removes it even after a crash.
        let name = "slt\(getpid())x0-lrt"
        _ = try CommandRunner.check(["ip", "netns", "add", name])
        defer { _ = try? CommandRunner.run(["ip", "netns", "del", name]) }
        _ = try CommandRunner.check(["ip", "-n", name, "link", "set", "lo", "up"])
        let path = "/run/netns/\(name)"
        let routes = try LocalRoutes(namespace: NetworkNamespace(path: path), netnsPath: path)
        let addresses = [IPAddress("10.96.0.1")!, IPAddress("fd96::1")!]
        for address in addresses { try routes.add(address) }
        #expect(Set(try routes.addresses()) == Set(addresses))
        let shown = try CommandRunner.check(["ip", "-n", name, "-6", "route", "show", "table", "local"])
            + CommandRunner.check(["ip", "-n", name, "route", "show", "table", "local"])
        #expect(shown.contains("local fd96::1 dev lo proto 233"), "\(shown)")
        #expect(shown.contains("local 10.96.0.1 dev lo proto 233"), "\(shown)")
        for address in addresses { try routes.delete(address) }
        #expect(try routes.addresses().isEmpty)
    }
}
