import CBPF
import Foundation
import SluiceBPFPrograms
import SluiceModel

/// One loaded copy of the eBPF capture object (`bpf/sluice_capture.bpf.c`): its programs and
/// maps, owned by descriptor. Closing it (or the agent exiting) frees everything it loaded.
final class CaptureProgram {
    /// Counter slots of the `sluice_counters` map, in the order the C enum declares them.
    enum Counter: UInt32, CaseIterable {
        case connectRedirected, connectBypassed, sockhashInserted, messagesRedirected, bytesRedirected
        case originalDestinationAnswered, inboundAssigned, inboundNoListener
    }

    private var object: OpaquePointer?

    /// Loads and verifies the object; errors carry libbpf's and the verifier's messages.
    init(name: String) throws {
        let bytes = CaptureProgramObject.bytes
        var error = [CChar](repeating: 0, count: 16 * 1024)
        let loaded = bytes.withUnsafeBytes { raw in
            sluice_bpf_load(raw.baseAddress, raw.count, name, &error, error.count)
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

    /// Writes `struct capture_config`.
    func configure(outboundPort: UInt16, inboundPort: UInt16, proxyMark: UInt32, markMask: UInt32) throws {
        var value: [UInt8] = []
        value += withUnsafeBytes(of: outboundPort.littleEndian, Array.init)
        value += withUnsafeBytes(of: inboundPort.littleEndian, Array.init)
        value += withUnsafeBytes(of: proxyMark.littleEndian, Array.init)
        value += withUnsafeBytes(of: markMask.littleEndian, Array.init)
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

    /// Current counter values.
    func counters() throws -> [Counter: UInt64] {
        let fd = try mapDescriptor("sluice_counters")
        var values: [Counter: UInt64] = [:]
        for counter in Counter.allCases {
            var key = counter.rawValue
            var value: UInt64 = 0
            guard sluice_bpf_map_lookup(fd, &key, &value) == 0 else { continue }
            values[counter] = value
        }
        return values
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
