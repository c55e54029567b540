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
        try IPTablesProgrammer(backend: backend, target: target).install(ruleSets)
    }

    public func remove(_ target: CaptureTarget) throws {
        try IPTablesProgrammer(backend: backend, target: target).remove(tables: ["nat"])
    }

    public func verify(_ target: CaptureTarget) throws -> CaptureVerification {
        try IPTablesProgrammer(backend: backend, target: target).verify(ruleSets)
    }

    private func ruleSets(_ family: IPTablesRuleSet.Family, _ target: CaptureTarget) -> [IPTablesRuleSet] {
        [IPTablesRuleSet(family: family, options: target.options, proxyMark: target.proxyMark)]
    }
}

/// Installs, removes and verifies Sluice's iptables chains in one workload namespace, one
/// `iptables-restore` transaction per table and address family.
struct IPTablesProgrammer {
    let backend: IPTablesBackend
    let target: CaptureTarget

    typealias RuleSets = (IPTablesRuleSet.Family, CaptureTarget) -> [IPTablesRuleSet]

    func install(_ ruleSets: RuleSets) throws {
        for family in families() {
            for rules in ruleSets(family, target) {
                let current = try state(family, rules.table)
                guard let script = rules.installScript(current: current) else { continue }
                try apply(script, family: family, step: "install \(family.rawValue) \(rules.table) rules")
                let after = rules.verify(try state(family, rules.table))
                guard after == .installed else {
                    throw CaptureError(netnsPath: target.netnsPath, step: "verify after install", detail: after.description)
                }
            }
        }
    }

    func remove(tables: [String]) throws {
        for family in families() {
            for table in tables {
                let current = try state(family, table)
                if let script = IPTablesRuleSet.removeScript(current: current) {
                    try apply(script, family: family, step: "remove \(family.rawValue) \(table) rules")
                }
                try dropEmptyTable(family, table, hadTable: current.hasTable)
            }
        }
    }

    func verify(_ ruleSets: RuleSets) throws -> CaptureVerification {
        var results: [CaptureVerification] = []
        for family in families() {
            for rules in ruleSets(family, target) {
                results.append(rules.verify(try state(family, rules.table)))
            }
        }
        return CaptureVerification.combining(results)
    }

    /// The address families to program: IPv6 only where the namespace has it enabled.
    func families() -> [IPTablesRuleSet.Family] {
        let disabled = try? CommandRunner.check(
            ["cat", "/proc/sys/net/ipv6/conf/all/disable_ipv6"], inNamespace: target.netnsPath)
        if let disabled, disabled.trimmingCharacters(in: .whitespacesAndNewlines) == "0" { return [.ipv4, .ipv6] }
        return [.ipv4]
    }

    private func state(_ family: IPTablesRuleSet.Family, _ table: String) throws -> IPTablesState {
        do {
            let output = try CommandRunner.check(
                [backend.command(family.saveCommand), "-t", table], inNamespace: target.netnsPath)
            return IPTablesState(saveOutput: output, table: table)
        } catch {
            throw CaptureError(netnsPath: target.netnsPath, step: "read \(family.rawValue) \(table) rules", detail: "\(error)")
        }
    }

    private func apply(_ script: String, family: IPTablesRuleSet.Family, step: String) throws {
        do {
            try CommandRunner.check(
                [backend.command(family.restoreCommand), "--noflush", "-w", "5"], input: script, inNamespace: target.netnsPath)
        } catch {
            throw CaptureError(netnsPath: target.netnsPath, step: step, detail: "\(error)")
        }
    }

    /// iptables-nft creates an nf_tables table on first use and never deletes it; when it is
    /// empty after removal it is deleted too, so removal leaves nothing behind.
    private func dropEmptyTable(_ family: IPTablesRuleSet.Family, _ table: String, hadTable: Bool) throws {
        guard backend == .nft, hadTable, try state(family, table).isEmpty else { return }
        let nftFamily = family == .ipv4 ? "ip" : "ip6"
        _ = try? CommandRunner.run(["nft", "delete", "table", nftFamily, table], inNamespace: target.netnsPath)
    }
}

extension CaptureVerification {
    /// Installed when every part is, absent when every part is, drifted otherwise.
    static func combining(_ parts: [CaptureVerification]) -> CaptureVerification {
        if parts.allSatisfy({ $0 == .installed }) { return .installed }
        if parts.allSatisfy({ $0 == .absent }) { return .absent }
        return .drifted(parts.flatMap { part -> [String] in
            switch part {
            case .drifted(let details): return details
            case .absent: return ["one part of the capture is absent"]
            case .installed: return []
            }
        })
    }
}
