import Foundation
import SluiceLinux
import SluiceModel

/// The IPVS capture mode: one IPVS virtual service per service address inside the workload's
/// namespace (those the proxy's configuration routes plus any listed with `--services`),
/// masquerading to the proxy's outbound listener, programmed over generic netlink. `net.ipv4.vs.conntrack=1` makes IPVS keep the conntrack entry (original
/// tuple untouched, reply tuple rewritten), so the proxy reads the service address with
/// `SO_ORIGINAL_DST` as in the netfilter modes. Each service address also gets a local host
/// route (see `LocalRoutes`), without which IPVS's loopback destination is unreachable.
public struct IPVSCapture: CaptureMode {
    public let name = CaptureModeName.ipvs
    public let capturesServiceAddresses = true

    public init() {}

    public func install(_ target: CaptureTarget) throws {
        let plan = try plan(target)
        let namespace = try open(target)
        try setConntrack(true, in: namespace, target: target)
        try ConntrackDemand(namespace: namespace, target: target).install()
        let ipvs = try IPVSNetlink(namespace: namespace, netnsPath: target.netnsPath)
        let current = try captureServices(ipvs, target: target)
        let wanted = Dictionary(plan.services.map { ($0.service, $0.destination) }, uniquingKeysWith: { first, _ in first })
        for (service, destinations) in current where destinations != wanted[service].map({ [$0] }) {
            try target.step("remove stale service \(service)") { try ipvs.deleteService(service) }
        }
        let existing = Set(try target.step("list services") { try ipvs.services() })
        for (service, destination) in plan.services {
            if current[service] == [destination] { continue }
            if existing.contains(service) && current[service] == nil {
                throw CaptureError(
                    netnsPath: target.netnsPath, step: "add service \(service)",
                    detail: "an IPVS service with this address already exists and is not Sluice's")
            }
            try target.step("add service \(service)") {
                try ipvs.addService(service)
                try ipvs.addDestination(destination, to: service)
            }
        }
        let routes = try LocalRoutes(namespace: namespace, netnsPath: target.netnsPath)
        let wantedRoutes = plan.routedAddresses
        let currentRoutes = Set(try routes.addresses())
        for address in currentRoutes where !wantedRoutes.contains(address) { try routes.delete(address) }
        for address in wantedRoutes.subtracting(currentRoutes) { try routes.add(address) }
        let after = try verify(target)
        guard after == .installed else {
            throw CaptureError(netnsPath: target.netnsPath, step: "verify after install", detail: after.description)
        }
    }

    public func remove(_ target: CaptureTarget) throws {
        let namespace = try open(target)
        let ipvs = try IPVSNetlink(namespace: namespace, netnsPath: target.netnsPath)
        for service in try captureServices(ipvs, target: target).keys {
            try target.step("remove service \(service)") { try ipvs.deleteService(service) }
        }
        let routes = try LocalRoutes(namespace: namespace, netnsPath: target.netnsPath)
        for address in try routes.addresses() { try routes.delete(address) }
        // The sysctl goes back to the kernel default once nothing of IPVS is left in the namespace.
        if try target.step("list services", { try ipvs.services() }).isEmpty {
            try setConntrack(false, in: namespace, target: target)
        }
        try ConntrackDemand(namespace: namespace, target: target).remove()
    }

    public func verify(_ target: CaptureTarget) throws -> CaptureVerification {
        let plan = try plan(target)
        let namespace = try open(target)
        let ipvs = try IPVSNetlink(namespace: namespace, netnsPath: target.netnsPath)
        let current = try captureServices(ipvs, target: target)
        let routed = Set(try LocalRoutes(namespace: namespace, netnsPath: target.netnsPath).addresses())
        let conntrackDemanded = try ConntrackDemand(namespace: namespace, target: target).isInstalled()
        if current.isEmpty && routed.isEmpty && !conntrackDemanded { return .absent }
        var problems: [String] = []
        for (service, destination) in plan.services {
            switch current[service] {
            case nil: problems.append("service \(service) missing")
            case [destination]?: break
            case let other?: problems.append("service \(service) forwards to \(other.map(\.description)), expected \(destination)")
            }
        }
        let planned = Set(plan.services.map(\.service))
        for service in current.keys where !planned.contains(service) {
            problems.append("unexpected service \(service)")
        }
        for address in plan.routedAddresses.subtracting(routed) { problems.append("local route for \(address) missing") }
        for address in routed.subtracting(plan.routedAddresses) { problems.append("unexpected local route for \(address)") }
        if !conntrackDemanded {
            problems.append("nft table inet \(ConntrackDemand.table) (conntrack demand) missing")
        }
        if try !conntrackEnabled(in: namespace, target: target) {
            problems.append("net.ipv4.vs.conntrack is 0, so the proxy cannot read original destinations")
        }
        return problems.isEmpty ? .installed : .drifted(problems)
    }

    // MARK: - Steps

    private func plan(_ target: CaptureTarget) throws -> IPVSCapturePlan {
        do {
            return try IPVSCapturePlan(
                options: target.options, proxyServiceAddresses: target.serviceAddresses, ipv6Enabled: ipv6Enabled(target))
        } catch {
            throw CaptureError(netnsPath: target.netnsPath, step: "plan IPVS services", detail: "\(error)")
        }
    }

    private func open(_ target: CaptureTarget) throws -> NetworkNamespace {
        do {
            return try NetworkNamespace(path: target.netnsPath)
        } catch {
            throw CaptureError(netnsPath: target.netnsPath, step: "open namespace", detail: "\(error)")
        }
    }

    /// The namespace's services that this mode installed, with their destinations.
    private func captureServices(_ ipvs: IPVSNetlink, target: CaptureTarget) throws -> [SocketEndpoint: [SocketEndpoint]] {
        var result: [SocketEndpoint: [SocketEndpoint]] = [:]
        for service in try target.step("list services", { try ipvs.services() }) {
            let destinations = try target.step("list destinations of \(service)") { try ipvs.destinations(of: service) }
            if IPVSCapturePlan.isCaptureService(destinations: destinations, options: target.options) {
                result[service] = destinations
            }
        }
        return result
    }


    private static let conntrackSysctl = "/proc/sys/net/ipv4/vs/conntrack"

    /// /proc/sys/net shows the namespace of the thread that opens the file.
    private func setConntrack(_ enabled: Bool, in namespace: NetworkNamespace, target: CaptureTarget) throws {
        // The sysctl exists once ip_vs is loaded; opening the netlink family loads it.
        _ = try IPVSNetlink(namespace: namespace, netnsPath: target.netnsPath)
        let ok = try namespace.perform { () -> Bool in
            let fd = Glibc.open(Self.conntrackSysctl, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { return false }
            defer { close(fd) }
            let value = enabled ? "1\n" : "0\n"
            return value.withCString { write(fd, $0, strlen($0)) } > 0
        }
        guard ok else {
            throw CaptureError(
                netnsPath: target.netnsPath, step: "set net.ipv4.vs.conntrack=\(enabled ? 1 : 0)",
                detail: "cannot write \(Self.conntrackSysctl): \(String(cString: strerror(errno))) (kernel built without IP_VS_NFCT?)")
        }
    }

    private func conntrackEnabled(in namespace: NetworkNamespace, target: CaptureTarget) throws -> Bool {
        let text = try namespace.perform { try? String(contentsOfFile: Self.conntrackSysctl, encoding: .utf8) }
        return text?.trimmingCharacters(in: .whitespacesAndNewlines) == "1"
    }

    private func ipv6Enabled(_ target: CaptureTarget) -> Bool {
        guard let namespace = try? NetworkNamespace(path: target.netnsPath) else { return false }
        let text = try? namespace.perform { try? String(contentsOfFile: "/proc/sys/net/ipv6/conf/all/disable_ipv6", encoding: .utf8) }
        return text?.trimmingCharacters(in: .whitespacesAndNewlines) == "0"
    }
}
