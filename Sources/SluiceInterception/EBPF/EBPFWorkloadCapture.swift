import CBPF
import Foundation
import SluiceLinux
import SluiceModel

/// Everything the eBPF mode holds for one workload: its copy of the programs that read its
/// settings (connect4, connect6, tc), its counter slot, the links attaching programs to its
/// cgroup (the shared `sockops` too) and to its interfaces (tcx), and the cgroup the agent
/// created for it, if any. The proxies' hooks belong to `EBPFSharedCapture`. Links are plain
/// descriptors owned by the agent process: closing them, or the agent exiting, detaches them;
/// nothing is pinned, so nothing outlives the agent.
///
/// Only touched under `EBPFCapture`'s lock.
final class EBPFWorkloadCapture: @unchecked Sendable {
    let target: CaptureTarget
    let shared: EBPFSharedCapture
    /// The workload's slot in the shared counters.
    let slot: UInt32
    let cgroupPath: String
    /// The agent made `cgroupPath`; removal takes it away again.
    let createdCgroup: Bool
    /// Processes the agent moved into its cgroup, with the cgroup each came from.
    private var movedProcesses: [Int32: String]
    private var program: CaptureProgram?
    private var workloadLinks: [CInt] = []
    private var interfaceLinks: [String: CInt] = [:]

    /// Attaches capture for `target` (the proxies hooked by `shared` already); on failure
    /// everything done so far is undone.
    init(target: CaptureTarget, shared: EBPFSharedCapture, slot: UInt32) throws {
        self.target = target
        self.shared = shared
        self.slot = slot
        if let given = target.options.cgroup {
            cgroupPath = try CgroupV2.resolve(given)
            createdCgroup = false
            movedProcesses = [:]
        } else {
            cgroupPath = try Self.agentCgroup(for: target.workloadID)
            let existed = FileManager.default.fileExists(atPath: cgroupPath)
            try CgroupV2.create(cgroupPath)
            createdCgroup = true
            movedProcesses = [:]
            do {
                try adoptNamespaceProcesses()
            } catch {
                if !existed { releaseCgroup() }
                throw error
            }
        }
        do {
            try checkProxiesOutside(proxyPIDs: target.proxyPIDs)
            try attachAll()
        } catch {
            detach()
            throw error
        }
    }

    /// Where the agent creates a workload's cgroup when the operator names none.
    static func agentCgroup(for workloadID: String) throws -> String {
        let safe = String(workloadID.map { $0.isLetter || $0.isNumber || "-_.".contains($0) ? $0 : "_" })
        return try CgroupV2.mountPoint() + "/sluice.workloads/" + (safe.hasPrefix(".") ? "_" + safe : safe)
    }

    /// Whether this attachment serves `other` as it is (same namespace, options and cgroup).
    func serves(_ other: CaptureTarget) -> Bool {
        other.netnsPath == target.netnsPath && other.options == target.options && other.proxyMark == target.proxyMark
            && other.workloadID == target.workloadID
    }

    /// Refuses proxies that run inside the workload's cgroup: their own connections would be
    /// captured.
    func checkProxiesOutside(proxyPIDs: [Int32]) throws {
        for pid in proxyPIDs {
            let cgroup = try CgroupV2.cgroup(ofProcess: pid)
            guard !CgroupV2.isSameOrBelow(cgroup, cgroupPath) else {
                throw EBPFError(
                    "the proxy (pid \(pid)) runs in the workload's cgroup \(cgroup): its own connections would be "
                        + "captured; run the proxy in a cgroup outside \(cgroupPath)")
            }
        }
    }

    /// Whether every link (the proxies' too) is still attached and the cgroup still exists.
    func verify() -> CaptureVerification {
        var problems: [String] = []
        if !FileManager.default.fileExists(atPath: cgroupPath) { problems.append("cgroup \(cgroupPath) is gone") }
        if program == nil { problems.append("programs are not loaded") }
        problems += shared.problems()
        let links = workloadLinks + interfaceLinks.values
        var linkID: UInt32 = 0
        var programID: UInt32 = 0
        for fd in links where sluice_bpf_link_ids(fd, &linkID, &programID) != 0 {
            problems.append("link descriptor \(fd) is no longer valid")
        }
        if workloadLinks.count != 3 { problems.append("\(workloadLinks.count) of 3 workload cgroup hooks attached") }
        return problems.isEmpty ? .installed : .drifted(problems)
    }

    /// Detaches the workload's links, unloads its programs and maps, and gives back the cgroup
    /// the agent created (its processes return to where they came from). Its counter slot is
    /// the caller's to release.
    func detach() {
        for fd in workloadLinks + interfaceLinks.values { _ = Glibc.close(fd) }
        workloadLinks = []
        interfaceLinks = [:]
        program?.close()
        program = nil
        if createdCgroup { releaseCgroup() }
    }

    /// The workload's counter values (the shared programs count in its slot too).
    func counters() throws -> [CaptureProgram.Counter: UInt64] {
        try shared.program.counters(workload: slot)
    }

    // MARK: Attaching

    private func attachAll() throws {
        let program = try CaptureProgram(name: "sluice", programs: CaptureProgram.workloadPrograms, sharingMapsOf: shared.program)
        self.program = program
        let options = target.options
        try program.configure(
            outboundPort: options.outboundPort, inboundPort: options.inboundPort, proxyMark: target.proxyMark,
            markMask: CaptureDefaults.markMask, workload: slot)
        for port in Set(options.excludePorts) { try program.excludePort(port) }
        for range in options.excludeCIDRs { try program.excludeRange(range) }
        // Connections to the workload's own addresses stay on lo, as in the iptables mode.
        let namespace: NetworkNamespace
        do {
            namespace = try NetworkNamespace(path: target.netnsPath)
        } catch {
            throw EBPFError("\(error)")
        }
        for address in (try? namespace.interfaceAddresses()) ?? [] {
            if let range = CIDRRange(address) { try program.excludeRange(range) }
        }
        // The proxy side is hooked already (by `EBPFCapture`): by the time the first connect
        // is redirected, the proxy's accepted socket is recognised.
        workloadLinks.append(try shared.link("sluice_sockops", to: cgroupPath, hook: SLUICE_HOOK_SOCK_OPS))
        try attachInbound(program, in: namespace)
        for (name, hook) in [("sluice_connect4", SLUICE_HOOK_CONNECT4), ("sluice_connect6", SLUICE_HOOK_CONNECT6)] {
            workloadLinks.append(try EBPFSharedCapture.link(try program.programDescriptor(name), name, to: cgroupPath, hook: hook))
        }
    }

    /// tcx ingress links on every interface of the workload's namespace but lo. tcx resolves
    /// the interface index in the calling thread's namespace, so this runs inside it.
    private func attachInbound(_ program: CaptureProgram, in namespace: NetworkNamespace) throws {
        let programFD = try program.programDescriptor("sluice_inbound")
        let result: Result<[String: CInt], EBPFError> = try namespace.perform {
            var links: [String: CInt] = [:]
            guard let list = if_nameindex() else { return .success(links) }
            defer { if_freenameindex(list) }
            var entry = list
            while entry.pointee.if_index != 0 {
                let name = String(cString: entry.pointee.if_name)
                let index = entry.pointee.if_index
                entry += 1
                if name == "lo" { continue }
                let fd = sluice_bpf_link_tcx_ingress(programFD, Int32(index))
                guard fd >= 0 else {
                    links.values.forEach { _ = Glibc.close($0) }
                    return .failure(EBPFError("attaching sluice_inbound to tcx ingress of \(name): \(String(cString: strerror(-fd)))"))
                }
                links[name] = fd
            }
            return .success(links)
        }
        interfaceLinks = try result.get()
    }

    // MARK: The agent's cgroup

    /// Moves the processes already running in the workload's namespace into its cgroup.
    private func adoptNamespaceProcesses() throws {
        // The host's own namespace is no workload: adopting it would move every process.
        var own = stat()
        var workload = stat()
        if stat("/proc/self/ns/net", &own) == 0, stat(target.netnsPath, &workload) == 0,
           own.st_ino == workload.st_ino, own.st_dev == workload.st_dev {
            throw EBPFError(
                "\(target.netnsPath) is the agent's own network namespace; name the workload's cgroup with --cgroup "
                    + "instead of letting the agent move every process of this namespace")
        }
        for pid in CgroupV2.processes(inNetworkNamespace: target.netnsPath) {
            guard let origin = try? CgroupV2.cgroup(ofProcess: pid), origin != cgroupPath else { continue }
            try CgroupV2.move(pid, to: cgroupPath)
            movedProcesses[pid] = origin
        }
    }

    /// Sends the cgroup's processes back where they came from (the hierarchy's root for
    /// those whose origin this agent does not know, e.g. after a restart) and removes it.
    private func releaseCgroup() {
        guard let root = try? CgroupV2.mountPoint() else { return }
        for pid in CgroupV2.processes(in: cgroupPath) {
            let origin = movedProcesses[pid].flatMap { FileManager.default.fileExists(atPath: $0) ? $0 : nil } ?? root
            try? CgroupV2.move(pid, to: origin)
        }
        movedProcesses = [:]
        try? CgroupV2.remove(cgroupPath)
        // The shared parent goes too once no workload uses it.
        try? CgroupV2.remove((cgroupPath as NSString).deletingLastPathComponent)
    }
}
