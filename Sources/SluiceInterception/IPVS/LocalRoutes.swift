import CGenericNetlink
import Foundation
import SluiceLinux
import SluiceModel

/// Host routes of type `local` in a namespace's local table, tagged with Sluice's routing
/// protocol number so that only its own are listed and removed.
///
/// IPVS needs them for its loopback destination: when it masquerades a locally originated
/// packet to a local address it keeps the packet's original route, so the service address
/// itself must route locally (as kube-proxy's IPVS mode does by putting service addresses on a
/// dummy interface); otherwise the rewritten packet leaves through the original interface.
final class LocalRoutes {
    /// The `rtm_protocol` value marking Sluice's routes (unassigned in iproute2's rt_protos).
    static let routingProtocol: UInt8 = 233

    private let handle: OpaquePointer
    private let loopbackIndex: Int32
    private let netnsPath: String

    init(namespace: NetworkNamespace, netnsPath: String) throws {
        self.netnsPath = netnsPath
        var opened: OpaquePointer?
        let (rc, index) = try namespace.perform { (sluice_rtnl_open(&opened), Int32(if_nametoindex("lo"))) }
        guard rc == 0, let opened else {
            throw CaptureError(netnsPath: netnsPath, step: "open route netlink", detail: String(cString: strerror(-rc)))
        }
        guard index > 0 else {
            sluice_genl_close(opened)
            throw CaptureError(netnsPath: netnsPath, step: "find the loopback interface", detail: "no interface lo")
        }
        handle = opened
        loopbackIndex = index
    }

    deinit {
        sluice_genl_close(handle)
    }

    /// The addresses that have a Sluice local route, both families.
    func addresses() throws -> [IPAddress] {
        let collector = Collector()
        for family in [AF_INET, AF_INET6] {
            try exchange(step: "list local routes", collector: collector) { sluice_rtnl_route_dump(self.handle, $0, family) }
        }
        return collector.addresses
    }

    func add(_ address: IPAddress) throws {
        try exchange(step: "add local route \(address)", collector: nil) {
            self.request($0, type: UInt16(RTM_NEWROUTE), flags: UInt16(NLM_F_CREATE | NLM_F_EXCL), address: address)
        }
    }

    func delete(_ address: IPAddress) throws {
        try exchange(step: "delete local route \(address)", collector: nil) {
            self.request($0, type: UInt16(RTM_DELROUTE), flags: 0, address: address)
        }
    }

    private func request(_ buffer: UnsafeMutableRawPointer, type: UInt16, flags: UInt16, address: IPAddress)
        -> UnsafeMutablePointer<nlmsghdr>?
    {
        let bytes = Self.bytes(address)
        return sluice_rtnl_local_route(
            handle, buffer, type, flags, address.isV4 ? AF_INET : AF_INET6, bytes, loopbackIndex, Self.routingProtocol)
    }

    private static func bytes(_ address: IPAddress) -> [UInt8] {
        switch address {
        case .v4(let value): return (0..<4).map { UInt8(truncatingIfNeeded: value >> (24 - 8 * $0)) }
        case .v6:
            var in6 = address.in6
            return withUnsafeBytes(of: &in6) { Array($0) }
        }
    }

    private func exchange(
        step: String, collector: Collector?, _ build: (UnsafeMutableRawPointer) -> UnsafeMutablePointer<nlmsghdr>?
    ) throws {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: sluice_genl_buffer_size(), alignment: 8)
        defer { buffer.deallocate() }
        guard let message = build(buffer) else {
            throw CaptureError(netnsPath: netnsPath, step: step, detail: "cannot build the netlink request")
        }
        let context = collector.map { Unmanaged.passUnretained($0).toOpaque() }
        let rc = sluice_rtnl_exchange(handle, message, SLUICE_RTA_MAX, collector == nil ? nil : Collector.handle, context)
        guard rc == 0 else { throw CaptureError(netnsPath: netnsPath, step: step, detail: String(cString: strerror(-rc))) }
    }

    /// Gathers the destinations of Sluice's local host routes from a dump.
    private final class Collector {
        var addresses: [IPAddress] = []

        static let handle: sluice_genl_reply_handler = { message, attributes, context in
            guard let message, let attributes, let context else { return 0 }
            var family: CInt = 0, length: CInt = 0, table: CInt = 0, proto: CInt = 0, type: CInt = 0
            guard sluice_rtnl_route_header(message, &family, &length, &table, &proto, &type) == 0,
                proto == LocalRoutes.routingProtocol, type == RTN_LOCAL, table == RT_TABLE_LOCAL.rawValue,
                let destination = attributes[Int(RTA_DST.rawValue)]
            else { return 0 }
            let size = Int(mnl_attr_get_payload_len(destination))
            guard let payload = mnl_attr_get_payload(destination) else { return 0 }
            let bytes = Array(UnsafeRawBufferPointer(start: payload, count: size))
            let collector = Unmanaged<Collector>.fromOpaque(context).takeUnretainedValue()
            if family == AF_INET, size == 4, length == 32 {
                collector.addresses.append(.v4(bytes.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }))
            } else if family == AF_INET6, size == 16, length == 128 {
                var in6 = in6_addr()
                withUnsafeMutableBytes(of: &in6) { for index in 0..<16 { $0[index] = bytes[index] } }
                collector.addresses.append(IPAddress(in6: in6))
            }
            return 0
        }
    }
}
