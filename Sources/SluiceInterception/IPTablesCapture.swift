import Foundation
import SluiceModel

/// Which iptables implementation writes the rules.
public enum IPTablesBackend: String, Sendable, CaseIterable {
    /// iptables over nf_tables (Debian's default).
    case nft
    /// The legacy x_tables implementation.
    case legacy

    /// The backend `iptables` on PATH uses.
    public static func systemDefault() -> IPTablesBackend {
        let version = (try? CommandRunner.run(["iptables", "--version"]))?.output ?? ""
        return version.contains("legacy") ? .legacy : .nft
    }

    func command(_ base: String) -> String {
        // iptables-save → iptables-nft-save, ip6tables-restore → ip6tables-legacy-restore
        let parts = base.split(separator: "-", maxSplits: 1)
        return "\(parts[0])-\(rawValue)-\(parts[1])"
    }
}

/// The iptables capture mode: nat-table REDIRECT rules inside the workload's namespace,
/// applied per address family with one `iptables-restore --noflush` transaction each.
public struct IPTablesCapture: CaptureMode {
    public let name = CaptureModeName.iptables
    public let backend: IPTablesBackend

    public init(backend: IPTablesBackend = .systemDefault()) {
        self.backend = backend
    }

    public func install(_ target: CaptureTarget) throws {
        for family in families(target) {
            let rules = IPTablesRuleSet(family: family, options: target.options, proxyMark: target.proxyMark)
            let current = try state(family, target)
            guard let script = rules.installScript(current: current) else { continue }
            try apply(script, family: family, target: target, step: "install \(family.rawValue) rules")
            let after = rules.verify(try state(family, target))
            guard after == .installed else {
                throw CaptureError(netnsPath: target.netnsPath, step: "verify after install", detail: after.description)
            }
        }
    }

    public func remove(_ target: CaptureTarget) throws {
        for family in families(target) {
            let current = try state(family, target)
            if let script = IPTablesRuleSet.removeScript(current: current) {
                try apply(script, family: family, target: target, step: "remove \(family.rawValue) rules")
            }
            try dropEmptyNatTable(family, target: target, hadTable: current.hasNatTable)
        }
    }

    public func verify(_ target: CaptureTarget) throws -> CaptureVerification {
        var results: [CaptureVerification] = []
        for family in families(target) {
            let rules = IPTablesRuleSet(family: family, options: target.options, proxyMark: target.proxyMark)
            results.append(rules.verify(try state(family, target)))
        }
        if results.allSatisfy({ $0 == .installed }) { return .installed }
        if results.allSatisfy({ $0 == .absent }) { return .absent }
        return .drifted(results.flatMap { result -> [String] in
            switch result {
            case .drifted(let details): return details
            case .absent: return ["rules of one address family are absent"]
            case .installed: return []
            }
        })
    }

    /// The address families to program: IPv6 only where the namespace has it enabled.
    private func families(_ target: CaptureTarget) -> [IPTablesRuleSet.Family] {
        let disabled = try? CommandRunner.check(
            ["cat", "/proc/sys/net/ipv6/conf/all/disable_ipv6"], inNamespace: target.netnsPath)
        if let disabled, disabled.trimmingCharacters(in: .whitespacesAndNewlines) == "0" { return [.ipv4, .ipv6] }
        return [.ipv4]
    }

    private func state(_ family: IPTablesRuleSet.Family, _ target: CaptureTarget) throws -> IPTablesState {
        do {
            let output = try CommandRunner.check(
                [backend.command(family.saveCommand), "-t", "nat"], inNamespace: target.netnsPath)
            return IPTablesState(saveOutput: output)
        } catch {
            throw CaptureError(netnsPath: target.netnsPath, step: "read \(family.rawValue) rules", detail: "\(error)")
        }
    }

    private func apply(_ script: String, family: IPTablesRuleSet.Family, target: CaptureTarget, step: String) throws {
        do {
            try CommandRunner.check(
                [backend.command(family.restoreCommand), "--noflush", "-w", "5"], input: script, inNamespace: target.netnsPath)
        } catch {
            throw CaptureError(netnsPath: target.netnsPath, step: step, detail: "\(error)")
        }
    }

    /// iptables-nft creates an nf_tables `nat` table on first use and never deletes it; when it
    /// is empty after removal it is deleted too, so removal leaves nothing behind.
    private func dropEmptyNatTable(_ family: IPTablesRuleSet.Family, target: CaptureTarget, hadTable: Bool) throws {
        guard backend == .nft, hadTable, try state(family, target).isEmpty else { return }
        let table = family == .ipv4 ? "ip" : "ip6"
        _ = try? CommandRunner.run(["nft", "delete", "table", table, "nat"], inNamespace: target.netnsPath)
    }
}
