import Foundation
import SluiceLinux

/// Makes the kernel track connections in a namespace. Conntrack hooks a namespace only once
/// something there asks for it (since Linux 4.15); `net.ipv4.vs.conntrack=1` alone does not,
/// so IPVS would find no conntrack entry to update and `SO_ORIGINAL_DST` fails with ENOENT
/// (observed on Debian's 6.1 kernel). An nftables rule with a `ct` expression asks for it;
/// it sits in a regular chain that no hook jumps to, so it is never evaluated. The table is
/// built and committed like the nftables mode's (libnftnl, one netlink batch), no `nft` binary.
struct ConntrackDemand {
    static let table = "sluice_ipvs"

    static let ruleSet = NFTablesRuleSet(
        table: table, sets: [],
        chains: [.init(name: "conntrack_demand", hook: nil, rules: [.init(statements: [.conntrackStateNew])])])

    let namespace: NetworkNamespace
    /// The workload whose namespace it is (names it in errors).
    let target: CaptureTarget

    func isInstalled() throws -> Bool {
        try NFTablesCapture.verification(of: try dump(try open()), expected: Self.ruleSet) == .installed
    }

    func install() throws {
        let socket = try open()
        if NFTablesCapture.verification(of: try dump(socket), expected: Self.ruleSet) == .installed { return }
        let batch = socket.makeBatch()
        try NFTablesMessages.install(Self.ruleSet, into: batch)
        try target.step("enable conntrack (nft table inet \(Self.table))") { try socket.commit(batch) }
    }

    func remove() throws {
        let socket = try open()
        guard try dump(socket) != nil else { return }
        let batch = socket.makeBatch()
        try NFTablesMessages.remove(table: Self.table, into: batch)
        try target.step("remove nft table inet \(Self.table)") { try socket.commit(batch) }
    }

    private func open() throws -> NetfilterSocket {
        try target.step("open netfilter socket") { try NetfilterSocket(namespace: namespace) }
    }

    private func dump(_ socket: NetfilterSocket) throws -> [DumpedRule]? {
        try target.step("read nft table inet \(Self.table)") { try socket.dumpRules(table: Self.table) }
    }
}
