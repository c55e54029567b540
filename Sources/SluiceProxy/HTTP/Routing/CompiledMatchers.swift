import SluiceModel

/// A `StringMatcher` ready to run: its regex compiled, its case folding decided.
struct CompiledStringMatcher: Sendable {
    enum Kind: Sendable {
        case exact(String), prefix(String), suffix(String), contains(String)
        case regex(RE2Regex)
    }

    let kind: Kind
    let ignoreCase: Bool

    /// Compiles `matcher`; `path` names it in errors.
    init(_ matcher: StringMatcher, path: String) throws(RouteTableError) {
        ignoreCase = matcher.ignoreCase
        switch matcher.pattern {
        case .exact(let s): kind = .exact(ignoreCase ? s.asciiLowercased : s)
        case .prefix(let s): kind = .prefix(ignoreCase ? s.asciiLowercased : s)
        case .suffix(let s): kind = .suffix(ignoreCase ? s.asciiLowercased : s)
        case .contains(let s): kind = .contains(ignoreCase ? s.asciiLowercased : s)
        case .regex(let pattern):
            // Envoy: "ignore_case has no effect for safe_regex."
            if matcher.ignoreCase { throw RouteTableError(path: path, "ignore_case has no effect for safe_regex") }
            kind = .regex(try compileRegex(pattern, path: path + ".safe_regex"))
        }
    }

    func matches(_ value: String) -> Bool {
        switch kind {
        case .regex(let re): return re.fullMatch(value)
        case .exact(let s): return (ignoreCase ? value.asciiLowercased : value) == s
        case .prefix(let s): return (ignoreCase ? value.asciiLowercased : value).hasPrefixBytes(s)
        case .suffix(let s): return (ignoreCase ? value.asciiLowercased : value).hasSuffixBytes(s)
        case .contains(let s):
            if s.isEmpty { return true }
            return (ignoreCase ? value.asciiLowercased : value).utf8.containsSequence(s.utf8)
        }
    }
}

/// A `HeaderMatcher` ready to run against a request.
struct CompiledHeaderMatcher: Sendable {
    enum Rule: Sendable {
        case string(CompiledStringMatcher)
        case present(Bool)
        case range(start: Int64, end: Int64)
    }

    let name: String
    let rule: Rule
    let invert: Bool
    let treatMissingAsEmpty: Bool

    init(_ matcher: HeaderMatcher, path: String) throws(RouteTableError) {
        name = matcher.name
        invert = matcher.invert
        treatMissingAsEmpty = matcher.treatMissingAsEmpty
        switch matcher.rule {
        case .string(let s): rule = .string(try CompiledStringMatcher(s, path: path + ".string_match"))
        case .present(let p): rule = .present(p)
        case .range(let start, let end): rule = .range(start: start, end: end)
        }
    }

    /// Envoy's `HeaderUtility::matchHeaders` for one matcher: a header sent several times matches
    /// when any one of its values does (seen with Envoy 1.40: values `a` and `b` match exact `b`
    /// but not exact `a,b`); a missing header matches nothing (inverted or not) unless it is
    /// treated as empty, except for `present_match`, which compares presence and then applies `invert`.
    func matches(_ request: HTTPRequestContext) -> Bool {
        let values = RequestHeaderLookup.values(of: name, in: request)
        if case .present(let wanted) = rule {
            return (!values.isEmpty) == wanted ? !invert : invert
        }
        let candidates = values.isEmpty ? (treatMissingAsEmpty ? [""] : []) : values
        guard !candidates.isEmpty else { return false }
        let result = candidates.contains { text in
            switch rule {
            case .string(let matcher): return matcher.matches(text)
            case .range(let start, let end):
                guard let number = parseEnvoyInt64(text) else { return false }
                return number >= start && number < end
            case .present: return false
            }
        }
        return result != invert
    }
}

/// A `QueryParameterMatcher` ready to run.
struct CompiledQueryParameterMatcher: Sendable {
    let name: String
    let matcher: CompiledStringMatcher?

    init(_ config: QueryParameterMatcher, path: String) throws(RouteTableError) {
        name = config.name
        matcher = try config.matcher.map { m throws(RouteTableError) in
            try CompiledStringMatcher(m, path: path + ".string_match")
        }
    }

    /// The first value of the parameter decides; without a string matcher presence is enough.
    func matches(_ parameters: QueryParameters) -> Bool {
        guard let value = parameters.first(name) else { return false }
        return matcher?.matches(value) ?? true
    }
}

/// How routing reads a header of a request by Envoy name.
enum RequestHeaderLookup {
    /// Pseudo-headers from the request head; any other name from the regular headers, several
    /// values joined with "," as Envoy's `getAllOfHeaderAsString` does. `host` is not an alias of
    /// `:authority` (Envoy keeps the authority only under `:authority`).
    static func value(of name: String, in request: HTTPRequestContext) -> String? {
        switch name {
        case ":path": return request.path
        case ":authority": return request.authority
        case ":method": return request.method
        case ":scheme": return request.scheme
        default:
            let all = request.headers[name]
            return all.isEmpty ? nil : all.joined(separator: ",")
        }
    }

    /// Every value of a header: one for pseudo-headers, each received value for regular ones.
    static func values(of name: String, in request: HTTPRequestContext) -> [String] {
        if name.hasPrefix(":") { return value(of: name, in: request).map { [$0] } ?? [] }
        return request.headers[name]
    }

    /// The first value of a regular header.
    static func first(_ name: String, in request: HTTPRequestContext) -> String? {
        request.headers.first(name: name)
    }
}

/// `absl::SimpleAtoi` for int64: optional surrounding ASCII whitespace, optional sign, decimal digits.
func parseEnvoyInt64(_ text: String) -> Int64? {
    let trimmed = text.trimmingASCIIWhitespace
    guard !trimmed.isEmpty else { return nil }
    return Int64(trimmed)
}

/// `absl::SimpleAtoi` for uint64.
func parseEnvoyUInt64(_ text: String) -> UInt64? {
    var trimmed = Substring(text.trimmingASCIIWhitespace)
    if trimmed.hasPrefix("+") { trimmed = trimmed.dropFirst() }
    guard !trimmed.isEmpty, trimmed.first != "-", trimmed.first != "+" else { return nil }
    return UInt64(trimmed)
}

func compileRegex(_ pattern: String, path: String) throws(RouteTableError) -> RE2Regex {
    do {
        return try RE2Regex(pattern)
    } catch {
        throw RouteTableError(path: path, error.message)
    }
}

extension String {
    /// ASCII-only lower-casing, as `absl::AsciiStrToLower` (other characters are left alone).
    var asciiLowercased: String {
        guard utf8.contains(where: { $0 >= 0x41 && $0 <= 0x5A }) else { return self }
        return String(decoding: utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }, as: UTF8.self)
    }

    var trimmingASCIIWhitespace: String {
        let bytes = Array(utf8)
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || (b >= 0x09 && b <= 0x0D) }
        guard let first = bytes.firstIndex(where: { !isSpace($0) }),
              let last = bytes.lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(decoding: bytes[first...last], as: UTF8.self)
    }

    /// Byte-wise prefix test (Swift's `hasPrefix` compares grapheme clusters, Envoy compares bytes).
    func hasPrefixBytes<S: StringProtocol>(_ prefix: S) -> Bool {
        utf8.starts(with: prefix.utf8)
    }

    func hasSuffixBytes<S: StringProtocol>(_ suffix: S) -> Bool {
        utf8.reversed().starts(with: suffix.utf8.reversed())
    }
}

extension Substring {
    func hasPrefixBytes<S: StringProtocol>(_ prefix: S) -> Bool {
        utf8.starts(with: prefix.utf8)
    }
}

extension Collection where Element == UInt8 {
    func containsSequence<C: Collection>(_ needle: C) -> Bool where C.Element == UInt8 {
        let n = Array(needle)
        let h = Array(self)
        guard n.count <= h.count else { return false }
        if n.isEmpty { return true }
        for start in 0...(h.count - n.count) where h[start] == n[0] {
            if h[start..<(start + n.count)].elementsEqual(n) { return true }
        }
        return false
    }
}
