import Foundation
import SluiceModel
import Testing

@testable import SluiceInterception

@Suite struct CgroupV2Tests {
    @Test func sameOrBelowComparesWholePathComponents() {
        #expect(CgroupV2.isSameOrBelow("/sys/fs/cgroup/a", "/sys/fs/cgroup/a"))
        #expect(CgroupV2.isSameOrBelow("/sys/fs/cgroup/a/b", "/sys/fs/cgroup/a"))
        #expect(CgroupV2.isSameOrBelow("/sys/fs/cgroup/a/b", "/sys/fs/cgroup/a/"))
        #expect(!CgroupV2.isSameOrBelow("/sys/fs/cgroup/ab", "/sys/fs/cgroup/a"))
        #expect(!CgroupV2.isSameOrBelow("/sys/fs/cgroup", "/sys/fs/cgroup/a"))
    }

    @Test(.enabled(if: CgroupV2Tests.hasCgroupV2, "no cgroup v2 hierarchy is mounted here"))
    func resolvesPathsAndNamesWhatIsWrong() throws {
        let root = try CgroupV2.mountPoint()
        #expect(CgroupV2.isCgroupV2(root))
        #expect(try CgroupV2.resolve(root) == root)
        #expect(try CgroupV2.resolve("/") == root)
        #expect(try CgroupV2.cgroup(ofProcess: getpid()).hasPrefix(root))
        let missing = #expect(throws: CgroupError.self) { try CgroupV2.resolve("no-such-cgroup-\(getpid())") }
        #expect(missing?.description.contains("no-such-cgroup-\(getpid())") == true)
        let notCgroup = #expect(throws: CgroupError.self) { try CgroupV2.resolve("/tmp") }
        #expect(notCgroup?.description.contains("/tmp") == true)
    }

    @Test func agentCgroupNamesAreSafeDirectoryNames() throws {
        guard Self.hasCgroupV2 else { return }
        let path = try EBPFWorkloadCapture.agentCgroup(for: "../x y/z")
        #expect((path as NSString).lastPathComponent == "_.._x_y_z")
        #expect((path as NSString).deletingLastPathComponent.hasSuffix("/sluice.workloads"))
    }

    static var hasCgroupV2: Bool { (try? CgroupV2.mountPoint()) != nil }
}

@Suite struct CaptureProgramTests {
    /// The object the build compiled for this kernel passes the verifier and has every
    /// program and map the mode attaches; a workload's copy shares the node copy's maps.
    @Test(.enabled(if: geteuid() == 0, "loading BPF programs needs root (CAP_BPF)"))
    func embeddedObjectLoadsOnThisKernel() throws {
        let shared = try CaptureProgram(name: "sluice_test", programs: CaptureProgram.sharedPrograms)
        defer { shared.close() }
        let workload = try CaptureProgram(name: "sluice_test", programs: CaptureProgram.workloadPrograms, sharingMapsOf: shared)
        defer { workload.close() }
        for name in CaptureProgram.sharedPrograms { #expect(try shared.programDescriptor(name) >= 0) }
        for name in CaptureProgram.workloadPrograms { #expect(try workload.programDescriptor(name) >= 0) }
        #expect(throws: EBPFError.self, "only the named programs are loaded") { try workload.programDescriptor("sluice_getsockopt") }
        try workload.configure(outboundPort: 15001, inboundPort: 15006, proxyMark: 0x539, markMask: 0xfff, workload: 7)
        try workload.excludePort(9090)
        try workload.excludeRange(CIDRRange("10.0.0.0/8")!)
        try workload.excludeRange(CIDRRange("fd00::/8")!)
        try shared.attachMessageRedirect()
        try shared.resetCounters(workload: 7)
        #expect(try shared.counters(workload: 7).values.allSatisfy { $0 == 0 })
        #expect(try shared.counters(workload: CaptureProgram.workloadSlots - 1).count == CaptureProgram.Counter.allCases.count)
        #expect(throws: EBPFError.self) { try shared.programDescriptor("no_such_program") }
    }
}
