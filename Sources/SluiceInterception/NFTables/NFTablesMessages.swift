import CNetlink
import Foundation
import SluiceModel

/// Turns an `NFTablesRuleSet` into libnftnl objects and nf_tables netlink messages (the
/// nftables mode's capture table and the IPVS mode's conntrack-demand table).
///
/// Install is one batch — create the table if missing, delete it, create it again with its
/// sets, chains and rules — so the kernel swaps the old ruleset for the new one in a single
/// transaction and never runs a half-installed one.
struct NFTablesMessages {
    private static let family = UInt16(NFPROTO_INET)
    private static let register1 = UInt32(NFT_REG_1.rawValue)
    private static let verdictRegister = UInt32(NFT_REG_VERDICT.rawValue)

    /// Messages that replace whatever `inet <ruleSet.table>` holds with `ruleSet`.
    static func install(_ ruleSet: NFTablesRuleSet, into batch: NetlinkBatch) throws {
        let table = ruleSet.table
        try addTable(table, into: batch)
        try deleteTable(table, into: batch)
        try addTable(table, into: batch)
        for (index, set) in ruleSet.sets.enumerated() {
            try addSet(set, table: table, id: UInt32(index + 1), into: batch)
        }
        for chain in ruleSet.chains {
            try addChain(chain, table: table, into: batch)
            for rule in chain.rules {
                try addRule(rule, table: table, chain: chain.name, sets: ruleSet.sets, into: batch)
            }
        }
    }

    /// Messages that delete `inet <table>`, whether or not it exists.
    static func remove(table: String, into batch: NetlinkBatch) throws {
        try addTable(table, into: batch)
        try deleteTable(table, into: batch)
    }

    private static func tableObject(_ name: String) -> OpaquePointer {
        let table = nftnl_table_alloc()!
        nftnl_table_set_u32(table, attribute(NFTNL_TABLE_FAMILY), UInt32(family))
        nftnl_table_set_str(table, attribute(NFTNL_TABLE_NAME), name)
        return table
    }

    private static func addTable(_ name: String, into batch: NetlinkBatch) throws {
        let table = tableObject(name)
        defer { nftnl_table_free(table) }
        batch.append(type: NFT_MSG_NEWTABLE, flags: NLM_F_CREATE) { nftnl_table_nlmsg_build_payload($0, table) }
    }

    private static func deleteTable(_ name: String, into batch: NetlinkBatch) throws {
        let table = tableObject(name)
        defer { nftnl_table_free(table) }
        batch.append(type: NFT_MSG_DELTABLE, flags: 0) { nftnl_table_nlmsg_build_payload($0, table) }
    }

    private static func setObject(_ set: NFTablesRuleSet.NamedSet, table: String, id: UInt32) -> OpaquePointer {
        let object = nftnl_set_alloc()!
        nftnl_set_set_str(object, attribute(NFTNL_SET_TABLE), table)
        nftnl_set_set_str(object, attribute(NFTNL_SET_NAME), set.name)
        nftnl_set_set_u32(object, attribute(NFTNL_SET_FAMILY), UInt32(family))
        nftnl_set_set_u32(object, attribute(NFTNL_SET_ID), id)
        // nft's datatype numbers (inet_service, ipv4_addr, ipv6_addr), so `nft list` prints them.
        switch set.key {
        case .port:
            nftnl_set_set_u32(object, attribute(NFTNL_SET_KEY_TYPE), 13)
            nftnl_set_set_u32(object, attribute(NFTNL_SET_KEY_LEN), 2)
        case .ipv4, .ipv6:
            nftnl_set_set_u32(object, attribute(NFTNL_SET_KEY_TYPE), set.key == .ipv4 ? 7 : 8)
            nftnl_set_set_u32(object, attribute(NFTNL_SET_KEY_LEN), set.key == .ipv4 ? 4 : 16)
            nftnl_set_set_u32(object, attribute(NFTNL_SET_FLAGS), UInt32(NFT_SET_INTERVAL.rawValue))
        }
        return object
    }

    private static func addSet(_ set: NFTablesRuleSet.NamedSet, table: String, id: UInt32, into batch: NetlinkBatch) throws {
        let object = setObject(set, table: table, id: id)
        defer { nftnl_set_free(object) }
        batch.append(type: NFT_MSG_NEWSET, flags: NLM_F_CREATE) { nftnl_set_nlmsg_build_payload($0, object) }
        let elements = set.elements
        guard !elements.isEmpty else { return }
        for element in elements {
            let item = nftnl_set_elem_alloc()!
            element.key.withUnsafeBytes { _ = nftnl_set_elem_set(item, attribute(NFTNL_SET_ELEM_KEY), $0.baseAddress, UInt32($0.count)) }
            if element.intervalEnd {
                nftnl_set_elem_set_u32(item, attribute(NFTNL_SET_ELEM_FLAGS), UInt32(NFT_SET_ELEM_INTERVAL_END.rawValue))
            }
            nftnl_set_elem_add(object, item)
        }
        batch.append(type: NFT_MSG_NEWSETELEM, flags: NLM_F_CREATE) { nftnl_set_elems_nlmsg_build_payload($0, object) }
    }

    private static func addChain(_ chain: NFTablesRuleSet.Chain, table: String, into batch: NetlinkBatch) throws {
        let object = nftnl_chain_alloc()!
        defer { nftnl_chain_free(object) }
        nftnl_chain_set_str(object, attribute(NFTNL_CHAIN_TABLE), table)
        nftnl_chain_set_str(object, attribute(NFTNL_CHAIN_NAME), chain.name)
        nftnl_chain_set_u32(object, attribute(NFTNL_CHAIN_FAMILY), UInt32(family))
        if let hook = chain.hook {
            let number = hook == .prerouting ? NF_INET_PRE_ROUTING : NF_INET_LOCAL_OUT
            nftnl_chain_set_u32(object, attribute(NFTNL_CHAIN_HOOKNUM), UInt32(number.rawValue))
            nftnl_chain_set_s32(object, attribute(NFTNL_CHAIN_PRIO), chain.priority)
            nftnl_chain_set_str(object, attribute(NFTNL_CHAIN_TYPE), "nat")
        }
        batch.append(type: NFT_MSG_NEWCHAIN, flags: NLM_F_CREATE) { nftnl_chain_nlmsg_build_payload($0, object) }
    }

    private static func addRule(
        _ rule: NFTablesRuleSet.Rule, table: String, chain: String, sets: [NFTablesRuleSet.NamedSet], into batch: NetlinkBatch
    ) throws {
        let object = nftnl_rule_alloc()!
        defer { nftnl_rule_free(object) }
        nftnl_rule_set_str(object, attribute(NFTNL_RULE_TABLE), table)
        nftnl_rule_set_str(object, attribute(NFTNL_RULE_CHAIN), chain)
        nftnl_rule_set_u32(object, attribute(NFTNL_RULE_FAMILY), UInt32(family))
        for statement in rule.statements {
            for expression in expressions(statement, sets: sets) { nftnl_rule_add_expr(object, expression) }
        }
        let comment = nftnl_udata_buf_alloc(256)!
        defer { nftnl_udata_buf_free(comment) }
        _ = nftnl_udata_put_strz(comment, UInt8(attribute(NFTNL_UDATA_RULE_COMMENT)), rule.text)
        nftnl_rule_set_data(
            object, attribute(NFTNL_RULE_USERDATA), nftnl_udata_buf_data(comment), nftnl_udata_buf_len(comment))
        batch.append(type: NFT_MSG_NEWRULE, flags: NLM_F_CREATE | NLM_F_APPEND) { nftnl_rule_nlmsg_build_payload($0, object) }
    }

    // MARK: expressions

    private static func expressions(_ statement: NFTablesRuleSet.Statement, sets: [NFTablesRuleSet.NamedSet]) -> [OpaquePointer] {
        switch statement {
        case .transportIsTCP:
            return [meta(NFT_META_L4PROTO), compare([UInt8(IPPROTO_TCP)])]
        case .networkIs(let family):
            return [meta(NFT_META_NFPROTO), compare([UInt8(family == .ipv4 ? NFPROTO_IPV4 : NFPROTO_IPV6)])]
        case .markMatches(let value, let mask):
            // The mark is host-order in the register.
            return [meta(NFT_META_MARK), bitwise(mask: withUnsafeBytes(of: mask) { Array($0) }),
                    compare(withUnsafeBytes(of: value) { Array($0) })]
        case .outputInterface(let name):
            var padded = Array(name.utf8)
            padded += [UInt8](repeating: 0, count: max(0, Int(IFNAMSIZ) - padded.count))
            return [meta(NFT_META_OIFNAME), compare(padded)]
        case .destinationIn(let range):
            let v4 = range.network.isV4
            let length = v4 ? 4 : 16
            var result = [payload(NFT_PAYLOAD_NETWORK_HEADER, offset: v4 ? 16 : 24, length: length)]
            if range.prefixLength < range.network.bitWidth { result.append(bitwise(mask: range.maskBytes)) }
            result.append(compare(range.network.networkBytes))
            return result
        case .destinationPortInSet(let name):
            return [payload(NFT_PAYLOAD_TRANSPORT_HEADER, offset: 2, length: 2), lookup(name, sets: sets)]
        case .destinationInSet(let name, let family):
            let v4 = family == .ipv4
            return [payload(NFT_PAYLOAD_NETWORK_HEADER, offset: v4 ? 16 : 24, length: v4 ? 4 : 16), lookup(name, sets: sets)]
        case .counter:
            return [nftnl_expr_alloc("counter")!]
        case .returnFromChain:
            let expression = nftnl_expr_alloc("immediate")!
            nftnl_expr_set_u32(expression, attribute(NFTNL_EXPR_IMM_DREG), verdictRegister)
            nftnl_expr_set_u32(expression, attribute(NFTNL_EXPR_IMM_VERDICT), UInt32(bitPattern: NFT_RETURN.rawValue))
            return [expression]
        case .redirect(let port):
            let immediate = nftnl_expr_alloc("immediate")!
            nftnl_expr_set_u32(immediate, attribute(NFTNL_EXPR_IMM_DREG), register1)
            withUnsafeBytes(of: port.bigEndian) {
                _ = nftnl_expr_set(immediate, attribute(NFTNL_EXPR_IMM_DATA), $0.baseAddress, UInt32($0.count))
            }
            let redirect = nftnl_expr_alloc("redir")!
            nftnl_expr_set_u32(redirect, attribute(NFTNL_EXPR_REDIR_REG_PROTO_MIN), register1)
            return [immediate, redirect]
        case .conntrackStateNew:
            // As nft compiles it: load the state bits, keep the NEW bit, compare with zero.
            let state = nftnl_expr_alloc("ct")!
            nftnl_expr_set_u32(state, attribute(NFTNL_EXPR_CT_KEY), UInt32(NFT_CT_STATE.rawValue))
            nftnl_expr_set_u32(state, attribute(NFTNL_EXPR_CT_DREG), register1)
            let newBit: UInt32 = 1 << 3  // NF_CT_STATE_BIT(IP_CT_NEW), IP_CT_NEW being 2 (nf_conntrack_common.h)
            return [state, bitwise(mask: withUnsafeBytes(of: newBit) { Array($0) }),
                    compare([UInt8](repeating: 0, count: 4), operation: NFT_CMP_NEQ)]
        }
    }

    private static func meta(_ key: nft_meta_keys) -> OpaquePointer {
        let expression = nftnl_expr_alloc("meta")!
        nftnl_expr_set_u32(expression, attribute(NFTNL_EXPR_META_KEY), key.rawValue)
        nftnl_expr_set_u32(expression, attribute(NFTNL_EXPR_META_DREG), register1)
        return expression
    }

    private static func compare(_ data: [UInt8], operation: nft_cmp_ops = NFT_CMP_EQ) -> OpaquePointer {
        let expression = nftnl_expr_alloc("cmp")!
        nftnl_expr_set_u32(expression, attribute(NFTNL_EXPR_CMP_SREG), register1)
        nftnl_expr_set_u32(expression, attribute(NFTNL_EXPR_CMP_OP), operation.rawValue)
        data.withUnsafeBytes { _ = nftnl_expr_set(expression, attribute(NFTNL_EXPR_CMP_DATA), $0.baseAddress, UInt32($0.count)) }
        return expression
    }

    private static func bitwise(mask: [UInt8]) -> OpaquePointer {
        let expression = nftnl_expr_alloc("bitwise")!
        nftnl_expr_set_u32(expression, attribute(NFTNL_EXPR_BITWISE_SREG), register1)
        nftnl_expr_set_u32(expression, attribute(NFTNL_EXPR_BITWISE_DREG), register1)
        nftnl_expr_set_u32(expression, attribute(NFTNL_EXPR_BITWISE_LEN), UInt32(mask.count))
        mask.withUnsafeBytes { _ = nftnl_expr_set(expression, attribute(NFTNL_EXPR_BITWISE_MASK), $0.baseAddress, UInt32($0.count)) }
        let zero = [UInt8](repeating: 0, count: mask.count)
        zero.withUnsafeBytes { _ = nftnl_expr_set(expression, attribute(NFTNL_EXPR_BITWISE_XOR), $0.baseAddress, UInt32($0.count)) }
        return expression
    }

    private static func payload(_ base: nft_payload_bases, offset: UInt32, length: Int) -> OpaquePointer {
        let expression = nftnl_expr_alloc("payload")!
        nftnl_expr_set_u32(expression, attribute(NFTNL_EXPR_PAYLOAD_DREG), register1)
        nftnl_expr_set_u32(expression, attribute(NFTNL_EXPR_PAYLOAD_BASE), base.rawValue)
        nftnl_expr_set_u32(expression, attribute(NFTNL_EXPR_PAYLOAD_OFFSET), offset)
        nftnl_expr_set_u32(expression, attribute(NFTNL_EXPR_PAYLOAD_LEN), UInt32(length))
        return expression
    }

    private static func lookup(_ name: String, sets: [NFTablesRuleSet.NamedSet]) -> OpaquePointer {
        let expression = nftnl_expr_alloc("lookup")!
        nftnl_expr_set_u32(expression, attribute(NFTNL_EXPR_LOOKUP_SREG), register1)
        nftnl_expr_set_str(expression, attribute(NFTNL_EXPR_LOOKUP_SET), name)
        // A set created in the same batch is found by its batch-local id.
        if let index = sets.firstIndex(where: { $0.name == name }) {
            nftnl_expr_set_u32(expression, attribute(NFTNL_EXPR_LOOKUP_SET_ID), UInt32(index + 1))
        }
        return expression
    }
}

extension IPAddress {
    /// The address in network byte order (4 or 16 bytes).
    var networkBytes: [UInt8] {
        switch self {
        case .v4(let value): return withUnsafeBytes(of: value.bigEndian) { Array($0) }
        case .v6(let high, let low):
            return withUnsafeBytes(of: high.bigEndian) { Array($0) } + withUnsafeBytes(of: low.bigEndian) { Array($0) }
        }
    }
}

extension CIDRRange {
    /// The netmask in network byte order.
    var maskBytes: [UInt8] {
        let width = network.bitWidth
        return (0..<(width / 8)).map { index in
            let bits = Swift.max(0, Swift.min(8, prefixLength - index * 8))
            return bits == 0 ? 0 : UInt8(truncatingIfNeeded: 0xff << (8 - bits))
        }
    }

    /// The first address past the range, or nil when the range ends at the top of its family.
    var firstAddressAfter: [UInt8]? {
        var bytes = network.networkBytes
        // Add 2^(width - prefix) as a big-endian integer.
        let bit = network.bitWidth - prefixLength
        var index = bytes.count - 1 - bit / 8
        var carry = UInt16(1) << UInt16(bit % 8)
        while index >= 0, carry != 0 {
            let sum = UInt16(bytes[index]) + carry
            bytes[index] = UInt8(truncatingIfNeeded: sum)
            carry = sum >> 8
            index -= 1
        }
        return carry == 0 ? bytes : nil
    }
}
