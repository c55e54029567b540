import SluiceModel

/// String and header matching as Envoy's filters (RBAC, fault) apply it.
///
/// Kept in a namespace of its own so the route table's matcher (written separately) can differ in
/// performance tricks without the two colliding.
public enum FilterMatching {
    /// Envoy's `StringMatcher` semantics: `ignore_case` compares ASCII case-insensitively; `safe_regex`
    /// must match the whole value. An invalid regex never matches (configuration loading rejects it).
    public static func matches(_ matcher: StringMatcher, _ value: some StringProtocol) -> Bool {
        let candidate = String(value)
        switch matcher.pattern {
        case .exact(let pattern):
            return matcher.ignoreCase ? asciiLower(candidate) == asciiLower(pattern) : candidate == pattern
        case .prefix(let pattern):
            return matcher.ignoreCase ? asciiLower(candidate).hasPrefix(asciiLower(pattern)) : candidate.hasPrefix(pattern)
        case .suffix(let pattern):
            return matcher.ignoreCase ? asciiLower(candidate).hasSuffix(asciiLower(pattern)) : candidate.hasSuffix(pattern)
        case .contains(let pattern):
            return matcher.ignoreCase ? asciiLower(candidate).contains(asciiLower(pattern)) : candidate.contains(pattern)
        case .regex(let pattern):
            guard let regex = try? Regex(pattern) else { return false }
            return (try? regex.wholeMatch(in: candidate)) != nil
        }
    }

    /// Envoy's `HeaderMatcher` against a request. Several values of one header are joined with `,`.
    /// A missing header fails every match except `present_match` (and is the empty string with
    /// `treat_missing_header_as_empty`); `invert_match` inverts the result of a header that is there.
    public static func matches(_ matcher: HeaderMatcher, _ request: HTTPRequestContext) -> Bool {
        let value = request.value(of: matcher.name)
        if case .present(let present) = matcher.rule {
            return (present == (value != nil)) != matcher.invert
        }
        guard let subject = value ?? (matcher.treatMissingAsEmpty ? "" : nil) else { return false }
        let matched: Bool
        switch matcher.rule {
        case .string(let stringMatcher): matched = matches(stringMatcher, subject)
        case .range(let start, let end):
            if let number = Int64(subject) { matched = number >= start && number < end } else { matched = false }
        case .present: matched = true
        }
        return matched != matcher.invert
    }

    /// Every matcher matches (Envoy's `matchHeaders` over a list).
    public static func matchesAll(_ matchers: [HeaderMatcher], _ request: HTTPRequestContext) -> Bool {
        matchers.allSatisfy { matches($0, request) }
    }

    /// Checks that a matcher's regex compiles; the error names the pattern.
    public static func validate(_ matcher: StringMatcher, at field: String) throws(FilterConfigError) {
        if case .regex(let pattern) = matcher.pattern, (try? Regex(pattern)) == nil {
            throw FilterConfigError(field: field, problem: "invalid regex \(pattern)")
        }
    }

    private static func asciiLower(_ text: String) -> String {
        String(decoding: text.utf8.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }, as: UTF8.self)
    }
}

/// A filter configuration the data path cannot run; names the field and what is wrong with it.
public struct FilterConfigError: Error, Hashable, Sendable, CustomStringConvertible {
    public var field: String
    public var problem: String

    public init(field: String, problem: String) {
        self.field = field
        self.problem = problem
    }

    public var description: String { "\(field): \(problem)" }
}
