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
    /// program and map the mode attaches.
    @Test(.enabled(if: geteuid() == 0, "loading BPF programs needs root (CAP_BPF)"))
    func embeddedObjectLoadsOnThisKernel() throws {
        let program = try CaptureProgram(name: "sluice_test")
        defer { program.close() }
        for name in ["sluice_connect4", "sluice_connect6", "sluice_sockops", "sluice_sk_msg", "sluice_getsockopt", "sluice_inbound"] {
            #expect(try program.programDescriptor(name) >= 0)
        }
        try program.configure(outboundPort: 15001, inboundPort: 15006, proxyMark: 0x539, markMask: 0xfff)
        try program.excludePort(9090)
        try program.excludeRange(CIDRRange("10.0.0.0/8")!)
        try program.excludeRange(CIDRRange("fd00::/8")!)
        try program.attachMessageRedirect()
        #expect(try program.counters().values.allSatisfy { $0 == 0 })
        #expect(throws: EBPFError.self) { try program.programDescriptor("no_such_program") }
    }
}
