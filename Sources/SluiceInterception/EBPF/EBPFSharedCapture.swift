import CBPF
import Foundation

/// The node's one shared copy of the programs that serve every workload: `sockops` (on every
/// workload's cgroup and on the proxies' cgroups), `cgroup/getsockopt` (on the proxies'
/// cgroups) and `sk_msg` (on the SOCKHASH), with the maps that connect workloads to them. One
/// copy means one program per hook on the proxies' cgroups whatever the number of workloads; a
/// copy per workload stopped at 64 workloads, the most programs a cgroup hook holds (E2BIG).
///
/// It also hands out the workloads' counter slots. `EBPFCapture` creates it with the first
/// workload and closes it with the last, so removing every workload leaves nothing loaded.
/// Only touched under `EBPFCapture`'s lock.
final class EBPFSharedCapture: @unchecked Sendable {
    let program: CaptureProgram
    /// Proxy cgroup → sockops and getsockopt links on it.
    private var proxyLinks: [String: [CInt]] = [:]
    private var usedSlots = Set<UInt32>()

    init() throws {
        program = try CaptureProgram(name: "sluice", programs: CaptureProgram.sharedPrograms)
        do {
            try program.attachMessageRedirect()
        } catch {
            program.close()
            throw error
        }
    }

    var hasWorkloads: Bool { !usedSlots.isEmpty }

    /// A free counter slot, zeroed.
    func allocateSlot() throws -> UInt32 {
        guard let slot = (0..<CaptureProgram.workloadSlots).first(where: { !usedSlots.contains($0) }) else {
            throw EBPFError("all \(CaptureProgram.workloadSlots) workload slots of the eBPF mode are in use")
        }
        try program.resetCounters(workload: slot)
        usedSlots.insert(slot)
        return slot
    }

    func releaseSlot(_ slot: UInt32) {
        usedSlots.remove(slot)
    }

    /// Hooks the proxies' cgroups that are not hooked yet and unhooks those no proxy uses
    /// any more. With no proxy known (the agent just started), existing hooks stay.
    func follow(proxyPIDs: [Int32]) throws {
        guard !proxyPIDs.isEmpty else { return }
        let wanted = Set(try proxyPIDs.map { try CgroupV2.cgroup(ofProcess: $0) })
        for (cgroup, links) in proxyLinks where !wanted.contains(cgroup) {
            links.forEach { _ = Glibc.close($0) }
            proxyLinks[cgroup] = nil
        }
        for cgroup in wanted.sorted() where proxyLinks[cgroup] == nil {
            var links: [CInt] = []
            do {
                links.append(try link("sluice_sockops", to: cgroup, hook: SLUICE_HOOK_SOCK_OPS))
                links.append(try link("sluice_getsockopt", to: cgroup, hook: SLUICE_HOOK_GETSOCKOPT))
            } catch {
                links.forEach { _ = Glibc.close($0) }
                throw error
            }
            proxyLinks[cgroup] = links
        }
    }

    /// Attaches one of the shared programs to a cgroup with a link (a descriptor: closing it
    /// detaches the program).
    func link(_ name: String, to cgroup: String, hook: sluice_cgroup_hook) throws -> CInt {
        try Self.link(try program.programDescriptor(name), name, to: cgroup, hook: hook)
    }

    /// Attaches program `programFD` (called `name`) to `cgroup` with a link.
    static func link(_ programFD: CInt, _ name: String, to cgroup: String, hook: sluice_cgroup_hook) throws -> CInt {
        let cgroupFD = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard cgroupFD >= 0 else { throw EBPFError("cannot open cgroup \(cgroup): \(String(cString: strerror(errno)))") }
        defer { _ = Glibc.close(cgroupFD) }
        let fd = sluice_bpf_link_cgroup(programFD, cgroupFD, hook)
        guard fd >= 0 else { throw EBPFError("attaching \(name) to cgroup \(cgroup): \(String(cString: strerror(-fd)))") }
        return fd
    }

    /// Whether every proxy link is still attached.
    func problems() -> [String] {
        var linkID: UInt32 = 0
        var programID: UInt32 = 0
        return proxyLinks.values.joined().filter { sluice_bpf_link_ids($0, &linkID, &programID) != 0 }
            .map { "proxy link descriptor \($0) is no longer valid" }
    }

    /// Detaches the proxies' hooks and unloads the shared programs and maps.
    func close() {
        for fd in proxyLinks.values.joined() { _ = Glibc.close(fd) }
        proxyLinks = [:]
        program.close()
    }
}
