import Foundation
import SluiceModel
import Synchronization

/// The eBPF capture mode. Outbound: `cgroup/connect4`/`connect6` on the workload's cgroup
/// send TCP connects to the proxy's outbound listener on loopback, and `sockops` + `sk_msg`
/// splice the two loopback sockets together through a SOCKHASH. Inbound: a tcx ingress program
/// assigns new connections to the proxy's inbound listener (`bpf_sk_assign`). The proxy's
/// cgroup gets `sockops` (to recognise its accepted sockets) and `cgroup/getsockopt` (to answer
/// `SO_ORIGINAL_DST`). See bpf/sluice_capture.bpf.c.
///
/// The mode is stateful: programs and links live as descriptors in the agent process, one
/// `EBPFSharedCapture` for the programs every workload shares (those on the proxies' cgroups
/// among them) and one `EBPFWorkloadCapture` per workload, so one instance serves the whole
/// agent.
public final class EBPFCapture: CaptureMode {
    /// The agent's instance (it holds every workload's links).
    public static let shared = EBPFCapture()

    public let name = CaptureModeName.ebpf
    public var followsProxyProcesses: Bool { true }

    private struct State {
        /// Workload captures by namespace path.
        var workloads: [String: EBPFWorkloadCapture] = [:]
        /// Loaded with the first workload, closed with the last.
        var shared: EBPFSharedCapture?

        mutating func detach(_ path: String) {
            guard let existing = workloads.removeValue(forKey: path) else { return }
            existing.detach()
            existing.shared.releaseSlot(existing.slot)
            closeSharedIfUnused()
        }

        mutating func closeSharedIfUnused() {
            if let shared, !shared.hasWorkloads {
                shared.close()
                self.shared = nil
            }
        }
    }

    private let state = Mutex(State())

    public init() {}

    public func install(_ target: CaptureTarget) throws {
        try state.withLock { state in
            if let existing = state.workloads[target.netnsPath] {
                if existing.serves(target), existing.verify() == .installed {
                    try wrap(target, "follow the proxy") {
                        try existing.checkProxiesOutside(proxyPIDs: target.proxyPIDs)
                        try existing.shared.follow(proxyPIDs: target.proxyPIDs)
                    }
                    return
                }
                state.detach(target.netnsPath)
            }
            let shared = try state.shared ?? wrap(target, "load the shared programs") { try EBPFSharedCapture() }
            state.shared = shared
            do {
                // The proxy side first: by the time the first connect is redirected, the
                // proxy's accepted socket is recognised.
                state.workloads[target.netnsPath] = try wrap(target, "install") {
                    try shared.follow(proxyPIDs: target.proxyPIDs)
                    let slot = try shared.allocateSlot()
                    do {
                        return try EBPFWorkloadCapture(target: target, shared: shared, slot: slot)
                    } catch {
                        shared.releaseSlot(slot)
                        throw error
                    }
                }
            } catch {
                state.closeSharedIfUnused()
                throw error
            }
        }
    }

    public func remove(_ target: CaptureTarget) throws {
        let detached = state.withLock { state -> Bool in
            guard state.workloads[target.netnsPath] != nil else { return false }
            state.detach(target.netnsPath)
            return true
        }
        if detached { return }
        // Nothing loaded by this process (e.g. after a restart: the kernel dropped the links
        // with the old process), but the cgroup the agent created for the workload may remain.
        guard target.options.cgroup == nil, let path = try? EBPFWorkloadCapture.agentCgroup(for: target.workloadID),
              FileManager.default.fileExists(atPath: path)
        else { return }
        let root = try wrap(target, "remove") { try CgroupV2.mountPoint() }
        for pid in CgroupV2.processes(in: path) { try? CgroupV2.move(pid, to: root) }
        try wrap(target, "remove the agent's cgroup") { try CgroupV2.remove(path) }
        try? CgroupV2.remove((path as NSString).deletingLastPathComponent)
    }

    public func verify(_ target: CaptureTarget) throws -> CaptureVerification {
        let existing = state.withLock { $0.workloads[target.netnsPath] }
        guard let existing else { return .absent }
        guard existing.serves(target) else { return .drifted(["installed with other options"]) }
        return existing.verify()
    }

    /// The programs' counters: redirected and bypassed connects, SOCKHASH insertions, sk_msg
    /// redirects (messages and bytes), answered SO_ORIGINAL_DST, assigned inbound connections.
    /// "packets" counts events.
    public func counters(_ target: CaptureTarget) throws -> [CaptureCounter] {
        guard let existing = state.withLock({ $0.workloads[target.netnsPath] }) else { return [] }
        let values = try existing.counters()
        func value(_ counter: CaptureProgram.Counter) -> UInt64 { values[counter] ?? 0 }
        return [
            CaptureCounter(rule: "cgroup/connect: redirected to the proxy", packets: value(.connectRedirected), bytes: 0),
            CaptureCounter(rule: "cgroup/connect: excluded, left direct", packets: value(.connectBypassed), bytes: 0),
            CaptureCounter(rule: "sockops: sockets put in the SOCKHASH", packets: value(.sockhashInserted), bytes: 0),
            CaptureCounter(
                rule: "sk_msg: messages redirected past the TCP stack", packets: value(.messagesRedirected),
                bytes: value(.bytesRedirected)),
            CaptureCounter(rule: "cgroup/getsockopt: SO_ORIGINAL_DST answered", packets: value(.originalDestinationAnswered), bytes: 0),
            CaptureCounter(rule: "tc ingress: connections assigned to the proxy", packets: value(.inboundAssigned), bytes: 0),
            CaptureCounter(rule: "tc ingress: dropped, proxy not listening", packets: value(.inboundNoListener), bytes: 0),
        ]
    }

    private func wrap<T>(_ target: CaptureTarget, _ step: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as CaptureError {
            throw error
        } catch {
            throw CaptureError(netnsPath: target.netnsPath, step: "ebpf \(step)", detail: "\(error)")
        }
    }
}
