import SluiceModel

/// The tproxy capture mode: outbound TCP is redirected (nat, as in the iptables mode); inbound
/// TCP is handed to the proxy's transparent inbound listener by TPROXY in the mangle table, so
/// nothing is rewritten and the proxy connects on to the application from the real client
/// address. A policy route makes marked packets local, which is what delivers both the
/// diverted inbound packets and the application's replies to that transparent connection.
public struct TPROXYCapture: CaptureMode {
    public let name = CaptureModeName.tproxy
    public let backend: IPTablesBackend

    public init(backend: IPTablesBackend = .systemDefault()) {
        self.backend = backend
    }

    public func install(_ target: CaptureTarget) throws {
        let tables = IPTablesProgrammer(backend: backend, target: target)
        try tables.install(ruleSets)
        try PolicyRouting(target: target).install(tables.families())
    }

    public func remove(_ target: CaptureTarget) throws {
        let tables = IPTablesProgrammer(backend: backend, target: target)
        try tables.remove(tables: ["nat", "mangle"])
        try PolicyRouting(target: target).remove()
    }

    public func verify(_ target: CaptureTarget) throws -> CaptureVerification {
        let tables = IPTablesProgrammer(backend: backend, target: target)
        return .combining([try tables.verify(ruleSets), try PolicyRouting(target: target).verify(tables.families())])
    }

    private func ruleSets(_ family: IPTablesRuleSet.Family, _ target: CaptureTarget) -> [IPTablesRuleSet] {
        [
            IPTablesRuleSet(family: family, options: target.options, proxyMark: target.proxyMark, inbound: false),
            IPTablesRuleSet(transparentInboundFor: family, options: target.options, routingMark: CaptureDefaults.transparentMark),
        ]
    }
}

/// `ip rule fwmark MARK lookup TABLE` plus `local default dev lo` in that table, per family.
struct PolicyRouting {
    let target: CaptureTarget
    private let mark = "0x\(String(CaptureDefaults.transparentMark, radix: 16))"
    private let table = "\(CaptureDefaults.transparentRouteTable)"

    private func flag(_ family: IPTablesRuleSet.Family) -> String { family == .ipv4 ? "-4" : "-6" }
    private var ruleText: String { "fwmark \(mark)/\(mark) lookup \(table)" }

    func install(_ families: [IPTablesRuleSet.Family]) throws {
        for family in families {
            if try !hasRule(family) {
                try run(family, ["rule", "add", "fwmark", "\(mark)/\(mark)", "lookup", table], step: "add policy rule")
            }
            if try !hasRoute(family) {
                let any = family == .ipv4 ? "0.0.0.0/0" : "::/0"
                try run(family, ["route", "add", "local", any, "dev", "lo", "table", table], step: "add local route")
            }
        }
    }

    /// Removes every copy, for both families, whether or not IPv6 is enabled now.
    func remove() throws {
        for family in IPTablesRuleSet.Family.allCases {
            while (try? hasRule(family)) == true {
                try run(family, ["rule", "del", "fwmark", "\(mark)/\(mark)", "lookup", table], step: "delete policy rule")
            }
            if (try? hasRoute(family)) == true {
                try run(family, ["route", "flush", "table", table], step: "flush route table")
            }
        }
    }

    func verify(_ families: [IPTablesRuleSet.Family]) throws -> CaptureVerification {
        var parts: [CaptureVerification] = []
        for family in families {
            let rule = try hasRule(family), route = try hasRoute(family)
            if rule && route { parts.append(.installed) } else if !rule && !route { parts.append(.absent) } else {
                parts.append(.drifted(["\(family.rawValue): policy rule \(rule ? "present" : "missing"), local route \(route ? "present" : "missing")"]))
            }
        }
        return .combining(parts)
    }

    private func hasRule(_ family: IPTablesRuleSet.Family) throws -> Bool {
        try run(family, ["rule", "show"], step: "read policy rules").contains(ruleText)
    }

    private func hasRoute(_ family: IPTablesRuleSet.Family) throws -> Bool {
        // `show table N` fails while the table does not exist yet.
        try run(family, ["route", "show", "table", "all"], step: "read route tables")
            .split(separator: "\n").contains { $0.hasPrefix("local default dev lo table \(table) ") }
    }

    @discardableResult
    private func run(_ family: IPTablesRuleSet.Family, _ arguments: [String], step: String) throws -> String {
        do {
            return try CommandRunner.check(["ip", flag(family)] + arguments, inNamespace: target.netnsPath)
        } catch {
            throw CaptureError(netnsPath: target.netnsPath, step: "\(step) (\(family.rawValue))", detail: "\(error)")
        }
    }
}
