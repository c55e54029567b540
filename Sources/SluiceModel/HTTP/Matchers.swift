/// Envoy's `type.matcher.v3.StringMatcher`.
public struct StringMatcher: Hashable, Sendable {
    public enum Pattern: Hashable, Sendable {
        case exact(String)
        case prefix(String)
        case suffix(String)
        case contains(String)
        /// An RE2 pattern (`safe_regex`) that must match the whole value.
        case regex(String)
    }

    public var pattern: Pattern
    /// Compare ignoring ASCII case (not allowed with `regex`).
    public var ignoreCase: Bool

    public init(_ pattern: Pattern, ignoreCase: Bool = false) {
        self.pattern = pattern
        self.ignoreCase = ignoreCase
    }
}

/// Envoy's `route.v3.HeaderMatcher`, also used by RBAC and fault filters.
public struct HeaderMatcher: Hashable, Sendable {
    public enum Rule: Hashable, Sendable {
        /// `string_match` and the deprecated exact/prefix/suffix/contains/safe_regex forms.
        case string(StringMatcher)
        /// `present_match`: the header is present (true) or absent (false).
        case present(Bool)
        /// `range_match`: the value is an integer in `[start, end)`.
        case range(start: Int64, end: Int64)
    }

    /// Lower-case header name; `:authority`, `:path`, `:method`, `:scheme` name pseudo-headers.
    public var name: String
    public var rule: Rule
    public var invert: Bool
    /// A missing header is matched as the empty string.
    public var treatMissingAsEmpty: Bool

    public init(name: String, rule: Rule, invert: Bool = false, treatMissingAsEmpty: Bool = false) {
        self.name = name.lowercased()
        self.rule = rule
        self.invert = invert
        self.treatMissingAsEmpty = treatMissingAsEmpty
    }
}

/// Envoy's `route.v3.QueryParameterMatcher`.
public struct QueryParameterMatcher: Hashable, Sendable {
    public var name: String
    /// nil is `present_match: true`.
    public var matcher: StringMatcher?
    public var presentMatch: Bool

    public init(name: String, matcher: StringMatcher? = nil, presentMatch: Bool = false) {
        self.name = name
        self.matcher = matcher
        self.presentMatch = presentMatch
    }
}

/// A fraction as Envoy's `FractionalPercent` (numerator over 100, 10,000 or 1,000,000).
public struct FractionalPercent: Hashable, Sendable {
    public var numerator: UInt32
    public var denominator: UInt32

    public init(numerator: UInt32, denominator: UInt32 = 100) {
        self.numerator = numerator
        self.denominator = denominator
    }

    public static let all = FractionalPercent(numerator: 100)
    public static let none = FractionalPercent(numerator: 0)

    /// Whether a uniformly random `value` in `0..<denominator` falls inside the fraction.
    public func includes(_ value: UInt64) -> Bool { value % UInt64(denominator) < UInt64(numerator) }
}
