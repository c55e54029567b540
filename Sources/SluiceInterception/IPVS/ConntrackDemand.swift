import Foundation

/// Makes the kernel track connections in a namespace. Conntrack hooks a namespace only once
/// something there asks for it (since Linux 4.15); `net.ipv4.vs.conntrack=1` alone does not,
/// so IPVS would find no conntrack entry to update and `SO_ORIGINAL_DST` fails with ENOENT
/// (observed on Debian's 6.1 kernel). An nftables rule with a `ct` expression asks for it;
/// it sits in a regular chain that no hook jumps to, so it is never evaluated.
struct ConntrackDemand {
    static let table = "sluice_ipvs"

    let netnsPath: String

    static let ruleset = """
        table inet \(table) {
            chain conntrack_demand {
                ct state new
            }
        }
        """

    var isInstalled: Bool {
        (try? CommandRunner.run(["nft", "list", "table", "inet", Self.table], inNamespace: netnsPath).status) == 0
    }

    func install() throws {
        if isInstalled { return }
        do {
            try CommandRunner.check(["nft", "-f", "-"], input: Self.ruleset, inNamespace: netnsPath)
        } catch {
            throw CaptureError(netnsPath: netnsPath, step: "enable conntrack (nft table inet \(Self.table))", detail: "\(error)")
        }
    }

    func remove() throws {
        guard isInstalled else { return }
        do {
            try CommandRunner.check(["nft", "delete", "table", "inet", Self.table], inNamespace: netnsPath)
        } catch {
            throw CaptureError(netnsPath: netnsPath, step: "remove nft table inet \(Self.table)", detail: "\(error)")
        }
    }
}
