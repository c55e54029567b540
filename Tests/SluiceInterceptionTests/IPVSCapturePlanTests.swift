import Foundation
import SluiceModel
@testable import SluiceInterception
import Testing

@Suite struct IPVSCapturePlanTests {
    func options(_ services: [String], excludePorts: [UInt16] = [], excludeCIDRs: [String] = []) -> CaptureOptions {
        CaptureOptions(
            excludePorts: excludePorts, excludeCIDRs: excludeCIDRs.map { CIDRRange($0)! },
            services: services.map { SocketEndpoint($0)! })
    }

    @Test func eachServiceForwardsToTheOutboundListenerOnLoopbackOfItsFamily() throws {
        let plan = try IPVSCapturePlan(options: options(["10.96.0.1:80", "[fd96::1]:443"]))
        #expect(plan.services.map(\.service.description) == ["10.96.0.1:80", "[fd96::1]:443"])
        #expect(plan.services.map(\.destination.description) == ["127.0.0.1:15001", "[::1]:15001"])
    }

    @Test func exclusionsDuplicatesAndDisabledIPv6DropServices() throws {
        let plan = try IPVSCapturePlan(
            options: options(
                ["10.96.0.1:80", "10.96.0.1:80", "10.96.0.2:22", "10.97.3.4:80", "[fd96::1]:80"],
                excludePorts: [22], excludeCIDRs: ["10.97.0.0/16"]),
            ipv6Enabled: false)
        #expect(plan.services.map(\.service.description) == ["10.96.0.1:80"])
    }

    @Test func servicesIPVSCannotCaptureAreRejectedByName() {
        for bad in ["127.0.0.1:80", "[::1]:80", "0.0.0.0:80", "10.96.0.1:15001", "10.96.0.1:15006"] {
            #expect(throws: IPVSPlanError.self, "\(bad)") { try IPVSCapturePlan(options: options([bad])) }
            do {
                _ = try IPVSCapturePlan(options: options([bad]))
            } catch {
                #expect("\(error)".contains(bad), "\(error)")
            }
        }
    }

    @Test func theProxysServiceAddressesJoinTheListedOnesAndUnusableOnesAreSkipped() throws {
        let known = ["10.96.0.10:53", "10.96.0.1:80", "127.0.0.1:80", "10.96.0.3:15001", "10.97.0.1:80", "[fd96::1]:80"]
        let plan = try IPVSCapturePlan(
            options: options(["10.96.0.1:80"], excludeCIDRs: ["10.97.0.0/16"]),
            proxyServiceAddresses: known.map { SocketEndpoint($0)! })
        #expect(plan.services.map(\.service.description) == ["10.96.0.1:80", "10.96.0.10:53", "[fd96::1]:80"])
        let onlyKnown = try IPVSCapturePlan(options: options([]), proxyServiceAddresses: [SocketEndpoint("10.96.0.10:53")!])
        #expect(onlyKnown.services.map(\.service.description) == ["10.96.0.10:53"])
    }

    @Test func onlyServicesForwardingToTheProxyAreSluices() {
        let proxy = [SocketEndpoint("127.0.0.1:15001")!]
        #expect(IPVSCapturePlan.isCaptureService(destinations: proxy, options: CaptureOptions()))
        #expect(!IPVSCapturePlan.isCaptureService(destinations: [SocketEndpoint("10.0.0.5:80")!], options: CaptureOptions()))
        #expect(!IPVSCapturePlan.isCaptureService(destinations: [], options: CaptureOptions()))
        #expect(!IPVSCapturePlan.isCaptureService(destinations: proxy + [SocketEndpoint("10.0.0.5:80")!], options: CaptureOptions()))
    }

    @Test func optionsWrittenBeforeServicesExistedStillDecode() throws {
        let old = #"{"excludePorts":[22],"excludeCIDRs":["10.0.0.0/8"],"outboundPort":15001,"inboundPort":15006}"#
        let decoded = try JSONDecoder().decode(CaptureOptions.self, from: Data(old.utf8))
        #expect(decoded.services.isEmpty)
        let roundTrip = try JSONDecoder().decode(
            CaptureOptions.self, from: JSONEncoder().encode(options(["10.96.0.1:80", "[fd96::1]:80"])))
        #expect(roundTrip.services.map(\.description) == ["10.96.0.1:80", "[fd96::1]:80"])
    }
}
