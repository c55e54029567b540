import CGenericNetlink
import Foundation
import SluiceLinux
import SluiceModel

/// IPVS configuration of one network namespace over generic netlink (the kernel's "IPVS"
/// family), TCP services with masquerading destinations only: what the capture mode needs.
final class IPVSNetlink {
    private let handle: OpaquePointer
    private let netnsPath: String

    /// Opens the socket inside `namespace`; the socket stays bound to it afterwards.
    init(namespace: NetworkNamespace, netnsPath: String) throws {
        self.netnsPath = netnsPath
        var opened: OpaquePointer?
        var rc = try namespace.perform { sluice_genl_open(IPVS_GENL_NAME, &opened) }
        if rc == -ENOENT {
            // The family exists only once ip_vs is loaded; netlink does not auto-load it.
            let load = try? CommandRunner.run(["modprobe", "ip_vs"])
            rc = try namespace.perform { sluice_genl_open(IPVS_GENL_NAME, &opened) }
            if rc == -ENOENT {
                let modprobe: String
                switch load {
                case nil: modprobe = "modprobe not found"
                case let result? where result.status == 0: modprobe = "modprobe ip_vs succeeded but the family is still missing"
                case let result?: modprobe = "modprobe ip_vs: " + result.errorOutput.trimmingCharacters(in: .whitespacesAndNewlines)
                }
                throw CaptureError(
                    netnsPath: netnsPath, step: "open IPVS netlink",
                    detail: "this kernel has no IPVS (generic netlink family IPVS missing; \(modprobe))")
            }
        }
        guard rc == 0, let opened else {
            throw CaptureError(netnsPath: netnsPath, step: "open IPVS netlink", detail: Self.message(rc))
        }
        handle = opened
    }

    deinit {
        sluice_genl_close(handle)
    }

    /// Every TCP service addressed by IP and port (fwmark services are not listed).
    func services() throws -> [SocketEndpoint] {
        let collector = Collector()
        try exchange(command: IPVS_CMD_GET_SERVICE, dump: true, collector: collector, step: "list IPVS services") { _ in }
        return collector.services
    }

    /// The destinations of `service`.
    func destinations(of service: SocketEndpoint) throws -> [SocketEndpoint] {
        let collector = Collector()
        try exchange(command: IPVS_CMD_GET_DEST, dump: true, collector: collector, step: "list destinations of \(service)") {
            self.putService(service, full: false, into: $0)
        }
        return collector.destinations
    }

    func addService(_ service: SocketEndpoint) throws {
        try exchange(command: IPVS_CMD_NEW_SERVICE, step: "add IPVS service \(service)") {
            self.putService(service, full: true, into: $0)
        }
    }

    /// Adds a masquerading (NAT) destination: only MASQ updates the conntrack entry's reply
    /// tuple, which is what lets the proxy read the original destination.
    func addDestination(_ destination: SocketEndpoint, to service: SocketEndpoint) throws {
        try exchange(command: IPVS_CMD_NEW_DEST, step: "add destination \(destination) to \(service)") { message in
            self.putService(service, full: false, into: message)
            let nest = mnl_attr_nest_start(message, UInt16(IPVS_CMD_ATTR_DEST))
            self.putAddress(destination.address, type: IPVS_DEST_ATTR_ADDR, into: message)
            mnl_attr_put_u16(message, UInt16(IPVS_DEST_ATTR_PORT), destination.port.bigEndian)
            mnl_attr_put_u32(message, UInt16(IPVS_DEST_ATTR_FWD_METHOD), UInt32(IP_VS_CONN_F_MASQ))
            mnl_attr_put_u32(message, UInt16(IPVS_DEST_ATTR_WEIGHT), 1)
            mnl_attr_put_u32(message, UInt16(IPVS_DEST_ATTR_U_THRESH), 0)
            mnl_attr_put_u32(message, UInt16(IPVS_DEST_ATTR_L_THRESH), 0)
            mnl_attr_put_u16(message, UInt16(IPVS_DEST_ATTR_ADDR_FAMILY), Self.family(of: destination.address))
            mnl_attr_nest_end(message, nest)
        }
    }

    /// Deletes the service and its destinations.
    func deleteService(_ service: SocketEndpoint) throws {
        try exchange(command: IPVS_CMD_DEL_SERVICE, step: "delete IPVS service \(service)") {
            self.putService(service, full: false, into: $0)
        }
    }

    // MARK: - Messages

    /// The service attribute: its key (family, protocol, address, port) and, for a new service,
    /// the scheduler, flags, persistence timeout and netmask the kernel requires.
    private func putService(_ service: SocketEndpoint, full: Bool, into message: UnsafeMutablePointer<nlmsghdr>) {
        let nest = mnl_attr_nest_start(message, UInt16(IPVS_CMD_ATTR_SERVICE))
        mnl_attr_put_u16(message, UInt16(IPVS_SVC_ATTR_AF), Self.family(of: service.address))
        mnl_attr_put_u16(message, UInt16(IPVS_SVC_ATTR_PROTOCOL), UInt16(IPPROTO_TCP))
        putAddress(service.address, type: IPVS_SVC_ATTR_ADDR, into: message)
        mnl_attr_put_u16(message, UInt16(IPVS_SVC_ATTR_PORT), service.port.bigEndian)
        if full {
            mnl_attr_put_strz(message, UInt16(IPVS_SVC_ATTR_SCHED_NAME), "rr")
            var flags = ip_vs_flags(flags: 0, mask: 0)
            mnl_attr_put(message, UInt16(IPVS_SVC_ATTR_FLAGS), MemoryLayout<ip_vs_flags>.size, &flags)
            mnl_attr_put_u32(message, UInt16(IPVS_SVC_ATTR_TIMEOUT), 0)
            mnl_attr_put_u32(message, UInt16(IPVS_SVC_ATTR_NETMASK), service.address.isV4 ? 0xffff_ffff : 128)
        }
        mnl_attr_nest_end(message, nest)
    }

    /// IPVS carries addresses in a 16-byte union; IPv4 uses the first four bytes.
    private func putAddress(_ address: IPAddress, type: Int, into message: UnsafeMutablePointer<nlmsghdr>) {
        var bytes = [UInt8](repeating: 0, count: 16)
        switch address {
        case .v4(let value):
            for index in 0..<4 { bytes[index] = UInt8(truncatingIfNeeded: value >> (24 - 8 * index)) }
        case .v6:
            var in6 = address.in6
            withUnsafeBytes(of: &in6) { for index in 0..<16 { bytes[index] = $0[index] } }
        }
        mnl_attr_put(message, UInt16(type), 16, bytes)
    }

    private static func family(of address: IPAddress) -> UInt16 {
        UInt16(address.isV4 ? AF_INET : AF_INET6)
    }

    private func exchange(
        command: Int, dump: Bool = false, collector: Collector? = nil, step: String,
        _ build: (UnsafeMutablePointer<nlmsghdr>) -> Void
    ) throws {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: sluice_genl_buffer_size(), alignment: 8)
        defer { buffer.deallocate() }
        let flags = dump ? UInt16(NLM_F_DUMP) : 0
        guard let message = sluice_genl_request(handle, buffer, UInt8(command), UInt8(IPVS_GENL_VERSION), flags) else {
            throw CaptureError(netnsPath: netnsPath, step: step, detail: "cannot build the netlink request")
        }
        build(message)
        let context = collector.map { Unmanaged.passUnretained($0).toOpaque() }
        let rc = sluice_genl_exchange(handle, message, SLUICE_IPVS_CMD_ATTR_MAX, collector == nil ? nil : Collector.handle, context)
        guard rc == 0 else { throw IPVSNetlinkError(step: step, code: -rc) }
    }

    static func message(_ rc: CInt) -> String { String(cString: strerror(-rc)) }

    /// Gathers the services or destinations of a dump.
    private final class Collector {
        var services: [SocketEndpoint] = []
        var destinations: [SocketEndpoint] = []

        static let handle: sluice_genl_reply_handler = { _, attributes, context in
            guard let attributes, let context else { return 0 }
            let collector = Unmanaged<Collector>.fromOpaque(context).takeUnretainedValue()
            if let nest = attributes[Int(IPVS_CMD_ATTR_SERVICE)] {
                collector.readService(nest)
            }
            if let nest = attributes[Int(IPVS_CMD_ATTR_DEST)] {
                collector.readDestination(nest)
            }
            return 0
        }

        private func readService(_ nest: UnsafePointer<nlattr>) {
            let table = Self.nested(nest, max: Int(SLUICE_IPVS_SVC_ATTR_MAX))
            guard let family = table[Int(IPVS_SVC_ATTR_AF)].map({ mnl_attr_get_u16($0) }),
                let proto = table[Int(IPVS_SVC_ATTR_PROTOCOL)].map({ mnl_attr_get_u16($0) }), proto == IPPROTO_TCP,
                let address = table[Int(IPVS_SVC_ATTR_ADDR)].flatMap({ Self.address($0, family: family) }),
                let port = table[Int(IPVS_SVC_ATTR_PORT)].map({ UInt16(bigEndian: mnl_attr_get_u16($0)) })
            else { return }
            services.append(SocketEndpoint(address: address, port: port))
        }

        private func readDestination(_ nest: UnsafePointer<nlattr>) {
            let table = Self.nested(nest, max: Int(SLUICE_IPVS_DEST_ATTR_MAX))
            let family = table[Int(IPVS_DEST_ATTR_ADDR_FAMILY)].map { mnl_attr_get_u16($0) }
            guard let addressAttribute = table[Int(IPVS_DEST_ATTR_ADDR)],
                let port = table[Int(IPVS_DEST_ATTR_PORT)].map({ UInt16(bigEndian: mnl_attr_get_u16($0)) })
            else { return }
            // Without an explicit family (older kernels), a zero tail means IPv4.
            let bytes = Self.bytes(addressAttribute)
            let inferred = family ?? (bytes[4...].allSatisfy { $0 == 0 } ? UInt16(AF_INET) : UInt16(AF_INET6))
            guard let address = Self.address(addressAttribute, family: inferred) else { return }
            destinations.append(SocketEndpoint(address: address, port: port))
        }

        private static func nested(_ nest: UnsafePointer<nlattr>, max: Int) -> [UnsafePointer<nlattr>?] {
            var table = [UnsafePointer<nlattr>?](repeating: nil, count: max + 1)
            _ = table.withUnsafeMutableBufferPointer { sluice_genl_parse_nested(nest, UInt16(max), $0.baseAddress) }
            return table
        }

        private static func bytes(_ attribute: UnsafePointer<nlattr>) -> [UInt8] {
            let length = Int(mnl_attr_get_payload_len(attribute))
            guard let payload = mnl_attr_get_payload(attribute) else { return [] }
            return Array(UnsafeRawBufferPointer(start: payload, count: length)) + [UInt8](repeating: 0, count: max(0, 16 - length))
        }

        private static func address(_ attribute: UnsafePointer<nlattr>, family: UInt16) -> IPAddress? {
            let bytes = bytes(attribute)
            if family == AF_INET {
                return .v4(bytes[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
            }
            guard family == AF_INET6 else { return nil }
            var in6 = in6_addr()
            withUnsafeMutableBytes(of: &in6) { for index in 0..<16 { $0[index] = bytes[index] } }
            return IPAddress(in6: in6)
        }
    }
}

/// A netlink request the kernel refused, with its errno.
struct IPVSNetlinkError: Error, CustomStringConvertible {
    var step: String
    var code: CInt

    var description: String { "\(step): \(String(cString: strerror(code)))" }
}
