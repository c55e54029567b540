import CNetlink
import Foundation
import SluiceLinux

/// nf_tables messages collected into one netlink batch (begin … end), so the kernel applies
/// them as one transaction.
final class NetlinkBatch {
    private let buffer: UnsafeMutableRawPointer
    private let capacity = 1 << 20
    private let batch: OpaquePointer
    private(set) var sequence: UInt32
    private(set) var messagesAwaitingAck = 0

    init(firstSequence: UInt32) {
        buffer = .allocate(byteCount: capacity, alignment: 16)
        batch = mnl_nlmsg_batch_start(buffer, capacity)
        sequence = firstSequence
        nftnl_batch_begin(mnl_nlmsg_batch_current(batch).assumingMemoryBound(to: CChar.self), sequence)
        _ = mnl_nlmsg_batch_next(batch)
    }

    deinit {
        mnl_nlmsg_batch_stop(batch)
        buffer.deallocate()
    }

    /// Appends one message asking for an acknowledgement; `payload` fills its attributes.
    func append(type: nf_tables_msg_types, flags: Int32, payload: (UnsafeMutablePointer<nlmsghdr>) -> Void) {
        sequence &+= 1
        let header = nftnl_nlmsg_build_hdr(
            mnl_nlmsg_batch_current(batch).assumingMemoryBound(to: CChar.self), UInt16(type.rawValue),
            UInt16(NFPROTO_INET), UInt16(flags | NLM_F_ACK), sequence)!
        payload(header)
        messagesAwaitingAck += 1
        _ = mnl_nlmsg_batch_next(batch)
    }

    /// The whole batch, closed with its end marker.
    func finish() -> (UnsafeRawPointer, Int) {
        sequence &+= 1
        nftnl_batch_end(mnl_nlmsg_batch_current(batch).assumingMemoryBound(to: CChar.self), sequence)
        _ = mnl_nlmsg_batch_next(batch)
        return (UnsafeRawPointer(mnl_nlmsg_batch_head(batch)), mnl_nlmsg_batch_size(batch))
    }
}

/// What one dumped nf_tables rule says about itself.
struct DumpedRule: Equatable {
    var chain: String
    /// The rule's comment (Sluice stores the rule's own text there).
    var comment: String?
    var packets: UInt64
    var bytes: UInt64
}

/// A `NETLINK_NETFILTER` socket opened inside one network namespace. Its messages act on
/// that namespace whatever thread later uses the socket.
final class NetfilterSocket {
    private let socket: OpaquePointer
    private let portID: UInt32
    private var nextSequence = UInt32(truncatingIfNeeded: time(nil))

    init(namespace: NetworkNamespace) throws {
        socket = try namespace.perform {
            guard let socket = mnl_socket_open(NETLINK_NETFILTER) else { throw NetfilterError.system("open netlink socket", errno) }
            return socket
        }
        guard mnl_socket_bind(socket, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let code = errno
            mnl_socket_close(socket)
            throw NetfilterError.system("bind netlink socket", code)
        }
        portID = mnl_socket_get_portid(socket)
        // A kernel that never answers must not hang the agent.
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(mnl_socket_get_fd(socket), SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { mnl_socket_close(socket) }

    func makeBatch() -> NetlinkBatch {
        defer { nextSequence &+= 100_000 }
        return NetlinkBatch(firstSequence: nextSequence)
    }

    /// Sends the batch and waits for every message's acknowledgement; the first error fails it
    /// (the kernel then has applied nothing).
    func commit(_ batch: NetlinkBatch) throws {
        let expected = batch.messagesAwaitingAck
        let (head, size) = batch.finish()
        guard mnl_socket_sendto(socket, head, size) >= 0 else { throw NetfilterError.system("send batch", errno) }
        var acknowledged = 0
        var failure: Int32 = 0
        try receive { header in
            guard header.pointee.nlmsg_type == UInt16(NLMSG_ERROR) else { return true }
            let code = UnsafeRawPointer(header).advanced(by: MemoryLayout<nlmsghdr>.size).load(as: Int32.self)
            acknowledged += 1
            if code != 0, failure == 0 { failure = -code }
            // After an error the kernel aborts the batch and acknowledges nothing further.
            return failure == 0 && acknowledged < expected
        }
        if failure != 0 { throw NetfilterError.kernel(failure) }
    }

    /// Every rule of `inet <table>`; nil when the table does not exist.
    func dumpRules(table: String) throws -> [DumpedRule]? {
        let rule = nftnl_rule_alloc()!
        defer { nftnl_rule_free(rule) }
        nftnl_rule_set_str(rule, attribute(NFTNL_RULE_TABLE), table)
        var rules: [DumpedRule] = []
        let found = try request(NFT_MSG_GETRULE, flags: NLM_F_DUMP, payload: { nftnl_rule_nlmsg_build_payload($0, rule) }) {
            if let parsed = Self.parseRule($0) { rules.append(parsed) }
        }
        // A dump filtered by a missing table is simply empty, so ask for the table itself.
        guard found, try tableExists(table) else { return nil }
        return rules
    }

    /// The elements of set `name` in `inet <table>`; nil when the set does not exist.
    func dumpSetElements(table: String, set name: String) throws -> [NFTablesRuleSet.NamedSet.Element]? {
        let set = nftnl_set_alloc()!
        defer { nftnl_set_free(set) }
        nftnl_set_set_str(set, attribute(NFTNL_SET_TABLE), table)
        nftnl_set_set_str(set, attribute(NFTNL_SET_NAME), name)
        var elements: [NFTablesRuleSet.NamedSet.Element] = []
        let found = try request(NFT_MSG_GETSETELEM, flags: NLM_F_DUMP, payload: { nftnl_set_elems_nlmsg_build_payload($0, set) }) {
            elements += Self.parseElements($0)
        }
        return found ? elements : nil
    }

    private static func parseElements(_ header: UnsafeMutablePointer<nlmsghdr>) -> [NFTablesRuleSet.NamedSet.Element] {
        let set = nftnl_set_alloc()!
        defer { nftnl_set_free(set) }
        guard nftnl_set_elems_nlmsg_parse(header, set) == 0, let iterator = nftnl_set_elems_iter_create(set) else { return [] }
        defer { nftnl_set_elems_iter_destroy(iterator) }
        var elements: [NFTablesRuleSet.NamedSet.Element] = []
        while let element = nftnl_set_elems_iter_next(iterator) {
            var length: UInt32 = 0
            guard let key = nftnl_set_elem_get(element, attribute(NFTNL_SET_ELEM_KEY), &length) else { continue }
            let flags = nftnl_set_elem_is_set(element, attribute(NFTNL_SET_ELEM_FLAGS))
                ? nftnl_set_elem_get_u32(element, attribute(NFTNL_SET_ELEM_FLAGS)) : 0
            elements.append(.init(
                key: Array(UnsafeRawBufferPointer(start: key, count: Int(length))),
                intervalEnd: flags & UInt32(NFT_SET_ELEM_INTERVAL_END.rawValue) != 0))
        }
        return elements
    }

    private func tableExists(_ name: String) throws -> Bool {
        let table = nftnl_table_alloc()!
        defer { nftnl_table_free(table) }
        nftnl_table_set_str(table, attribute(NFTNL_TABLE_NAME), name)
        return try request(NFT_MSG_GETTABLE, flags: 0, payload: { nftnl_table_nlmsg_build_payload($0, table) }) { _ in }
    }

    /// Sends one request and hands every answer message to `handle`; false when the kernel
    /// answers that the object does not exist.
    private func request(
        _ type: nf_tables_msg_types, flags: Int32, payload: (UnsafeMutablePointer<nlmsghdr>) -> Void,
        handle: (UnsafeMutablePointer<nlmsghdr>) -> Void
    ) throws -> Bool {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 16)
        defer { buffer.deallocate() }
        nextSequence &+= 1
        let header = nftnl_nlmsg_build_hdr(
            buffer.assumingMemoryBound(to: CChar.self), UInt16(type.rawValue), UInt16(NFPROTO_INET),
            UInt16(flags | NLM_F_ACK), nextSequence)!
        payload(header)
        guard mnl_socket_sendto(socket, header, Int(header.pointee.nlmsg_len)) >= 0 else {
            throw NetfilterError.system("send request", errno)
        }
        var failure: Int32 = 0
        try receive { answer in
            switch Int32(answer.pointee.nlmsg_type) {
            case NLMSG_DONE:
                return false
            case NLMSG_ERROR:
                let code = UnsafeRawPointer(answer).advanced(by: MemoryLayout<nlmsghdr>.size).load(as: Int32.self)
                failure = -code
                return false
            default:
                handle(answer)
                return true
            }
        }
        if failure == ENOENT { return false }
        if failure != 0 { throw NetfilterError.kernel(failure) }
        return true
    }

    private static func parseRule(_ header: UnsafeMutablePointer<nlmsghdr>) -> DumpedRule? {
        let rule = nftnl_rule_alloc()!
        defer { nftnl_rule_free(rule) }
        guard nftnl_rule_nlmsg_parse(header, rule) == 0 else { return nil }
        let chain = String(cString: nftnl_rule_get_str(rule, attribute(NFTNL_RULE_CHAIN)))
        var comment: String?
        var length: UInt32 = 0
        if let data = nftnl_rule_get_data(rule, attribute(NFTNL_RULE_USERDATA), &length) {
            comment = commentTLV(UnsafeRawBufferPointer(start: data, count: Int(length)))
        }
        var packets: UInt64 = 0
        var bytes: UInt64 = 0
        let iterator = nftnl_expr_iter_create(rule)!
        defer { nftnl_expr_iter_destroy(iterator) }
        while let expression = nftnl_expr_iter_next(iterator) {
            if String(cString: nftnl_expr_get_str(expression, attribute(NFTNL_EXPR_NAME))) == "counter" {
                packets = nftnl_expr_get_u64(expression, attribute(NFTNL_EXPR_CTR_PACKETS))
                bytes = nftnl_expr_get_u64(expression, attribute(NFTNL_EXPR_CTR_BYTES))
            }
        }
        return DumpedRule(chain: chain, comment: comment, packets: packets, bytes: bytes)
    }

    /// The comment attribute of nftables rule userdata: type-length-value records.
    private static func commentTLV(_ data: UnsafeRawBufferPointer) -> String? {
        var offset = 0
        while offset + 2 <= data.count {
            let type = data[offset]
            let length = Int(data[offset + 1])
            guard offset + 2 + length <= data.count else { return nil }
            if type == UInt8(attribute(NFTNL_UDATA_RULE_COMMENT)) {
                let value = data[(offset + 2)..<(offset + 2 + length)].prefix { $0 != 0 }
                return String(decoding: value, as: UTF8.self)
            }
            offset += 2 + length
        }
        return nil
    }

    /// Reads netlink messages addressed to this socket until `handle` returns false.
    private func receive(_ handle: (UnsafeMutablePointer<nlmsghdr>) throws -> Bool) throws {
        let size = 1 << 16
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let received = mnl_socket_recvfrom(socket, buffer, size)
            guard received > 0 else { throw NetfilterError.system("receive netlink answer", received < 0 ? errno : EPIPE) }
            var remaining = Int32(received)
            var header: UnsafeMutablePointer<nlmsghdr>? = buffer.assumingMemoryBound(to: nlmsghdr.self)
            while let current = header, mnl_nlmsg_ok(current, remaining) {
                if current.pointee.nlmsg_pid == portID || current.pointee.nlmsg_pid == 0 {
                    if try !handle(current) { return }
                }
                header = mnl_nlmsg_next(current, &remaining)
            }
        }
    }
}

/// A netlink step that failed, with the kernel's or the system's reason.
enum NetfilterError: Error, CustomStringConvertible {
    case system(String, Int32)
    case kernel(Int32)

    var description: String {
        switch self {
        case .system(let step, let code): return "\(step): \(String(cString: strerror(code)))"
        case .kernel(let code): return "nf_tables rejected the batch: \(String(cString: strerror(code)))"
        }
    }
}

/// libnftnl declares some attribute enums with a name (imported as enum types) and others
/// without (imported as Int); both become the UInt16 its setters take.
func attribute<Attribute: RawRepresentable>(_ value: Attribute) -> UInt16 where Attribute.RawValue: BinaryInteger {
    UInt16(value.rawValue)
}

func attribute(_ value: Int) -> UInt16 { UInt16(value) }
