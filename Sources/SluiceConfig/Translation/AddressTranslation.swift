import SluiceModel
import SluiceXDSTypes

extension TranslationContext {
    /// An `Address` that must be an IP socket address (listeners, static endpoints).
    mutating func socketEndpoint(_ address: Envoy_Config_Core_V3_Address, path: String) -> (SocketEndpoint, Bool)? {
        switch address.address {
        case .socketAddress(let socket)?:
            return ipEndpoint(socket, path: child(path, "socket_address"))
        case .pipe?:
            unsupported(child(path, "pipe"), "Unix socket addresses are supported only for the admin endpoint",
                        feature: "Address.pipe")
        case .envoyInternalAddress?:
            unsupported(child(path, "envoy_internal_address"), "internal listeners are not supported",
                        feature: "Address.envoy_internal_address")
        case nil:
            invalid(path, "an address is required")
        }
        return nil
    }

    /// The IP endpoint and `ipv4_compat` flag of a socket address.
    mutating func ipEndpoint(_ socket: Envoy_Config_Core_V3_SocketAddress, path: String) -> (SocketEndpoint, Bool)? {
        guard socket.protocol == .tcp else {
            unsupported(child(path, "protocol"), "only TCP is supported", feature: "SocketAddress.protocol=UDP")
            return nil
        }
        guard let port = port(socket, path: path) else { return nil }
        guard let address = IPAddress(socket.address) else {
            invalid(child(path, "address"), "malformed IP address: \"\(socket.address)\"")
            return nil
        }
        if socket.ipv4Compat, address.isV4 {
            invalid(child(path, "ipv4_compat"), "ipv4_compat applies to IPv6 addresses only")
        }
        return (SocketEndpoint(address: address, port: port), socket.ipv4Compat)
    }

    mutating func port(_ socket: Envoy_Config_Core_V3_SocketAddress, path: String) -> UInt16? {
        switch socket.portSpecifier {
        case .portValue(let value)?:
            guard value <= 65535 else {
                invalid(child(path, "port_value"), "\(value) is not a valid port (at most 65535)")
                return nil
            }
            return UInt16(value)
        case .namedPort?:
            return nil  // reported by the schema check as unsupported
        case nil:
            invalid(path, "port_value is required")
            return nil
        }
    }

    mutating func cidrRange(_ range: Envoy_Config_Core_V3_CidrRange, path: String) -> CIDRRange? {
        guard let address = IPAddress(range.addressPrefix) else {
            invalid(child(path, "address_prefix"), "malformed IP address: \"\(range.addressPrefix)\"")
            return nil
        }
        let length = range.hasPrefixLen ? Int(range.prefixLen.value) : 0
        guard let cidr = CIDRRange(address: address, prefixLength: length) else {
            invalid(child(path, "prefix_len"), "\(length) is too long for \(range.addressPrefix)")
            return nil
        }
        return cidr
    }
}
