import CBPF
import Foundation
import SluiceBPFPrograms
import SluiceModel

/// One loaded copy of the eBPF capture object (`bpf/sluice_capture.bpf.c`), or of some of its
/// programs: its programs and maps, owned by descriptor. Closing it (or the agent exiting)
/// frees everything it loaded (maps it shares live on while another copy holds them).
final class CaptureProgram {
    /// Counter slots of one workload in the `sluice_counters` map, in the order the C enum
    /// declares them.
    enum Counter: UInt32, CaseIterable {
        case connectRedirected, connectBypassed, sockhashInserted, messagesRedirected, bytesRedirected
        case originalDestinationAnswered, inboundAssigned, inboundNoListener
    }

    /// What the node's shared copy loads: the programs that serve every workload.
    static let sharedPrograms = ["sluice_sockops", "sluice_getsockopt", "sluice_sk_msg"]
    /// What each workload's copy loads: the programs that read the workload's settings.
    static let workloadPrograms = ["sluice_connect4", "sluice_connect6", "sluice_inbound"]
    /// The maps a workload's copy takes from the shared copy: they carry connections from the
    /// workload's programs to the shared ones, and the counters.
    static let sharedMaps = ["sluice_origin", "sluice_pending", "sluice_socks", "sluice_counters"]
    /// Workload counter slots in `sluice_counters` (`MAX_WORKLOADS` in the C source).
    static let workloadSlots: UInt32 = 4096

    private var object: OpaquePointer?

    /// Loads and verifies `programs` of the object, with the maps in `sharedMaps` taken from
    /// `sharing` when given; errors carry libbpf's and the verifier's messages.
    init(name: String, programs: [String], sharingMapsOf sharing: CaptureProgram? = nil) throws {
        let bytes = CaptureProgramObject.bytes
        let sharedFDs = try sharing.map { shared in try Self.sharedMaps.map { try shared.mapDescriptor($0) } } ?? []
        let sharedNames = sharing == nil ? nil : Self.sharedMaps.joined(separator: ",")
        var error = [CChar](repeating: 0, count: 16 * 1024)
        let loaded = bytes.withUnsafeBytes { raw in
            sharedFDs.withUnsafeBufferPointer { fds in
                sluice_bpf_load(
                    raw.baseAddress, raw.count, name, programs.joined(separator: ","), sharedNames, fds.baseAddress, fds.count,
                    &error, error.count)
            }
        }
        guard let loaded else {
            let message = String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw EBPFError("loading the eBPF capture programs (built for kernel \(CaptureProgramObject.builtForKernel)): "
                + message.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        object = loaded
    }

    deinit { close() }

    func close() {
        if let object { sluice_bpf_close(object) }
        object = nil
    }

    func programDescriptor(_ name: String) throws -> CInt {
        let fd = sluice_bpf_program_fd(object, name)
        guard fd >= 0 else { throw EBPFError("program \(name) is missing from the capture object") }
        return fd
    }

    func mapDescriptor(_ name: String) throws -> CInt {
        let fd = sluice_bpf_map_fd(object, name)
        guard fd >= 0 else { throw EBPFError("map \(name) is missing from the capture object") }
        return fd
    }

    /// Writes `struct capture_config`; `workload` is the workload's counter slot.
    func configure(outboundPort: UInt16, inboundPort: UInt16, proxyMark: UInt32, markMask: UInt32, workload: UInt32) throws {
        var value: [UInt8] = []
        value += withUnsafeBytes(of: outboundPort.littleEndian, Array.init)
        value += withUnsafeBytes(of: inboundPort.littleEndian, Array.init)
        value += withUnsafeBytes(of: proxyMark.littleEndian, Array.init)
        value += withUnsafeBytes(of: markMask.littleEndian, Array.init)
        value += withUnsafeBytes(of: workload.littleEndian, Array.init)
        try update("sluice_config", key: withUnsafeBytes(of: UInt32(0), Array.init), value: value)
    }

    func excludePort(_ port: UInt16) throws {
        try update("sluice_ex_ports", key: withUnsafeBytes(of: port, Array.init), value: [1])
    }

    /// Adds a range to the trie of destinations never captured. Keys are 16-byte addresses
    /// (IPv4 in its mapped form, so its prefix length grows by 96).
    func excludeRange(_ range: CIDRRange) throws {
        let bits = UInt32(range.network.isV4 ? 96 + range.prefixLength : range.prefixLength)
        var key = withUnsafeBytes(of: bits, Array.init)
        key += withUnsafeBytes(of: range.network.in6, Array.init)
        try update("sluice_ex_nets", key: key, value: [1])
    }

    /// Attaches the sk_msg program to the SOCKHASH; it lives as long as the map.
    func attachMessageRedirect() throws {
        let rc = sluice_bpf_attach_sk_msg(try programDescriptor("sluice_sk_msg"), try mapDescriptor("sluice_socks"))
        guard rc == 0 else { throw EBPFError("attaching sk_msg to the SOCKHASH: \(String(cString: strerror(-rc)))") }
    }

    /// Current counter values of one workload slot.
    func counters(workload: UInt32) throws -> [Counter: UInt64] {
        let fd = try mapDescriptor("sluice_counters")
        var values: [Counter: UInt64] = [:]
        for counter in Counter.allCases {
            var key = workload * UInt32(Counter.allCases.count) + counter.rawValue
            var value: UInt64 = 0
            guard sluice_bpf_map_lookup(fd, &key, &value) == 0 else { continue }
            values[counter] = value
        }
        return values
    }

    /// Zeroes one workload slot's counters (a slot is reused after its workload left).
    func resetCounters(workload: UInt32) throws {
        for counter in Counter.allCases {
            let key = workload * UInt32(Counter.allCases.count) + counter.rawValue
            try update("sluice_counters", key: withUnsafeBytes(of: key, Array.init), value: withUnsafeBytes(of: UInt64(0), Array.init))
        }
    }

    private func update(_ map: String, key: [UInt8], value: [UInt8]) throws {
        let fd = try mapDescriptor(map)
        let rc = key.withUnsafeBytes { k in value.withUnsafeBytes { v in sluice_bpf_map_update(fd, k.baseAddress, v.baseAddress) } }
        guard rc == 0 else { throw EBPFError("writing map \(map): \(String(cString: strerror(-rc)))") }
    }
}

/// An eBPF capture step that failed, saying what and why.
public struct EBPFError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
