/// Envoy's virtual host lookup by authority: exact domain, then the longest `*suffix` wildcard,
/// then the longest `prefix*` wildcard, then `*`. Domains and the authority are compared in ASCII
/// lower case, the port included unless `ignore_port_in_host_matching` is set.
struct VirtualHostTable: Sendable {
    private var exact: [String: Int] = [:]
    /// Suffix wildcards keyed by suffix length (without the `*`), longest first when searched.
    private var suffixes: [Int: [String: Int]] = [:]
    private var prefixes: [Int: [String: Int]] = [:]
    private var suffixLengths: [Int] = []
    private var prefixLengths: [Int] = []
    private var defaultHost: Int?
    private let ignorePort: Bool

    /// Builds the table from each virtual host's domains; rejects what Envoy rejects.
    init(domains: [[String]], routeConfigName: String, ignorePort: Bool) throws(RouteTableError) {
        self.ignorePort = ignorePort
        for (index, hostDomains) in domains.enumerated() {
            for (domainIndex, original) in hostDomains.enumerated() {
                let domain = original.asciiLowercased
                let path = "virtual_hosts[\(index)].domains[\(domainIndex)]"
                var duplicate = false
                if domain == "*" {
                    if defaultHost != nil {
                        throw RouteTableError(path: path, "Only a single wildcard domain is permitted in route \(routeConfigName)")
                    }
                    defaultHost = index
                } else if domain.hasPrefix("*") {
                    let key = String(domain.dropFirst())
                    duplicate = suffixes[key.utf8.count, default: [:]].updateValue(index, forKey: key) != nil
                } else if domain.hasSuffix("*") {
                    let key = String(domain.dropLast())
                    duplicate = prefixes[key.utf8.count, default: [:]].updateValue(index, forKey: key) != nil
                } else {
                    duplicate = exact.updateValue(index, forKey: domain) != nil
                }
                if duplicate {
                    throw RouteTableError(path: path, "Only unique values for domains are permitted. Duplicate entry of domain \(domain) in route \(routeConfigName)")
                }
            }
        }
        suffixLengths = suffixes.keys.sorted(by: >)
        prefixLengths = prefixes.keys.sorted(by: >)
    }

    /// Index of the virtual host for `authority`, or nil (Envoy then answers 404 NR).
    func select(authority: String?) -> Int? {
        if exact.isEmpty && suffixes.isEmpty && prefixes.isEmpty { return defaultHost }
        guard var hostValue = authority else { return nil }
        if ignorePort, let portStart = Self.portStart(hostValue) {
            hostValue = String(hostValue[..<portStart])
        }
        let host = hostValue.asciiLowercased
        if let index = exact[host] { return index }
        let bytes = Array(host.utf8)
        for length in suffixLengths where length < bytes.count {
            let key = String(decoding: bytes[(bytes.count - length)...], as: UTF8.self)
            if let index = suffixes[length]?[key] { return index }
        }
        for length in prefixLengths where length < bytes.count {
            let key = String(decoding: bytes[..<length], as: UTF8.self)
            if let index = prefixes[length]?[key] { return index }
        }
        return defaultHost
    }

    /// Envoy's `HeaderUtility::getPortStart`: the last `:` unless it sits inside an IPv6 literal.
    static func portStart(_ host: String) -> String.Index? {
        guard let colon = host.lastIndex(of: ":") else { return nil }
        if let bracket = host.lastIndex(of: "]"), bracket > colon { return nil }
        return colon
    }
}
