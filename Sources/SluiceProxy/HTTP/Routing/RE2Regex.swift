import Foundation

/// A regular expression compiled once with RE2's semantics as far as Envoy's `safe_regex` uses them:
/// `fullMatch` (the whole input must match) and `replaceAll` (RE2's `GlobalReplace`).
///
/// The engine is Foundation's `NSRegularExpression` (ICU). Patterns are translated so the common
/// differences disappear: `\d \w \s` (and negations) are ASCII as in RE2, `.` excludes only `\n`,
/// `$` is end of text, `(?P<name>` becomes `(?<name>`. Constructs RE2 rejects (backreferences,
/// lookaround, atomic groups, possessive quantifiers, `\Z`) are rejected here too.
/// Known remaining differences: RE2 limits program size (Envoy rejects patterns over 100 by
/// default) which is not checked here; `\b` and case folding follow ICU's Unicode rules.
public struct RE2Regex: @unchecked Sendable {
    // NSRegularExpression is immutable and documented thread-safe.
    private let anchored: NSRegularExpression
    private let search: NSRegularExpression
    /// The pattern as configured.
    public let pattern: String
    /// Number of capturing groups.
    public let captureGroupCount: Int

    /// Compiles `pattern`; the error text says what is wrong.
    public init(_ pattern: String) throws(RE2RegexError) {
        self.pattern = pattern
        // ICU refuses an empty pattern; an empty group means the same.
        let translated = pattern.isEmpty ? "(?:)" : try Self.translate(pattern)
        do {
            search = try NSRegularExpression(pattern: translated)
            anchored = try NSRegularExpression(pattern: "\\A(?:" + translated + ")\\z")
        } catch {
            throw RE2RegexError(message: "invalid regex '\(pattern)'")
        }
        captureGroupCount = search.numberOfCaptureGroups
    }

    /// Whether the whole of `input` matches (RE2 `FullMatch`).
    public func fullMatch<S: StringProtocol>(_ input: S) -> Bool {
        let text = String(input)
        let ns = text as NSString
        return anchored.firstMatch(in: text, options: [], range: NSRange(location: 0, length: ns.length)) != nil
    }

    /// Replaces every non-overlapping match as RE2's `GlobalReplace` does (an empty match right
    /// after the previous match is skipped). `\0`…`\9` in `substitution` name groups, `\\` is a
    /// backslash. A substitution naming a group the pattern lacks leaves `input` unchanged, as RE2 does.
    public func replaceAll<S: StringProtocol>(_ input: S, with substitution: String) -> String {
        let text = String(input)
        let template = RewriteTemplate(substitution)
        if template.maxGroup > captureGroupCount { return text }
        let ns = text as NSString
        let end = ns.length
        var out = ""
        var position = 0
        var lastEnd = -1
        var count = 0
        while position <= end {
            guard let match = search.firstMatch(
                in: text, options: [.withTransparentBounds, .withoutAnchoringBounds],
                range: NSRange(location: position, length: end - position))
            else { break }
            let range = match.range
            if position < range.location {
                out += ns.substring(with: NSRange(location: position, length: range.location - position))
            }
            if range.location == lastEnd && range.length == 0 {
                // Disallow an empty match at the end of the last match: copy one character and go on.
                if position < end {
                    let step = Self.isHighSurrogate(ns.character(at: position)) && position + 1 < end ? 2 : 1
                    out += ns.substring(with: NSRange(location: position, length: step))
                    position += step
                } else {
                    position += 1
                }
                continue
            }
            template.append(to: &out, match: match, in: ns)
            position = range.location + range.length
            lastEnd = position
            count += 1
        }
        if count == 0 { return text }
        if position < end { out += ns.substring(from: position) }
        return out
    }

    /// Whether the `{` at `index` starts a counted repetition.
    private static func opensCountedRepetition(_ chars: [Character], at index: Int) -> Bool {
        var j = index + 1
        var sawDigit = false
        while j < chars.count, chars[j].isASCII, chars[j].isNumber || chars[j] == "," {
            if chars[j].isNumber && !sawDigit && (j == index + 1) { sawDigit = true }
            j += 1
        }
        return sawDigit && j < chars.count && chars[j] == "}"
    }

    /// Whether the `}` at `index` ends a counted repetition such as `{2}` or `{1,3}`.
    private static func closesCountedRepetition(_ chars: [Character], at index: Int) -> Bool {
        var j = index - 1
        var sawDigit = false
        while j >= 0, chars[j].isASCII, chars[j].isNumber || chars[j] == "," {
            if chars[j].isNumber { sawDigit = true }
            j -= 1
        }
        return j >= 0 && chars[j] == "{" && sawDigit && chars[j + 1].isNumber
    }

    private static func isHighSurrogate(_ unit: unichar) -> Bool { (0xD800...0xDBFF).contains(unit) }

    /// Rewrites an RE2 pattern into ICU syntax with RE2's meaning, or says why RE2 would reject it.
    static func translate(_ pattern: String) throws(RE2RegexError) -> String {
        let chars = Array(pattern)
        var out = ""
        var i = 0
        var inClass = false
        // Flags that change `.` and `$` make the plain translation wrong: keep those as written.
        let dotAll = pattern.contains("(?s")
        let multiLine = pattern.contains("(?m")
        func fail(_ what: String) -> RE2RegexError {
            RE2RegexError(message: "invalid regex '\(pattern)': \(what)")
        }
        while i < chars.count {
            let c = chars[i]
            if c == "\\" {
                guard i + 1 < chars.count else { throw fail("trailing \\") }
                let n = chars[i + 1]
                switch n {
                case "1"..."9" where !inClass: throw fail("backreferences are not supported")
                case "Z": throw fail("invalid escape sequence \\Z")
                case "d": out += inClass ? "0-9" : "[0-9]"
                case "w": out += inClass ? "0-9A-Za-z_" : "[0-9A-Za-z_]"
                case "s": out += inClass ? "\\t\\n\\f\\r " : "[\\t\\n\\f\\r ]"
                case "D": if inClass { throw fail("\\D inside a class is not supported here") }; out += "[^0-9]"
                case "W": if inClass { throw fail("\\W inside a class is not supported here") }; out += "[^0-9A-Za-z_]"
                case "S": if inClass { throw fail("\\S inside a class is not supported here") }; out += "[^\\t\\n\\f\\r ]"
                default: out.append(c); out.append(n)
                }
                i += 2
                continue
            }
            if inClass {
                if c == "]" { inClass = false }
                if c == "[" && i + 1 < chars.count && chars[i + 1] == ":" {
                    // POSIX class such as [:alpha:]: copy through its closing ":]".
                    var j = i + 2
                    while j + 1 < chars.count && !(chars[j] == ":" && chars[j + 1] == "]") { j += 1 }
                    out += String(chars[i...min(j + 1, chars.count - 1)])
                    i = j + 2
                    continue
                }
                out.append(c)
                i += 1
                continue
            }
            switch c {
            case "[":
                inClass = true
                out.append(c)
                i += 1
                // A leading "]" (after an optional "^") is a literal in both engines.
                if i < chars.count && chars[i] == "^" { out.append("^"); i += 1 }
                if i < chars.count && chars[i] == "]" { out += "\\]"; i += 1 }
                continue
            case "(":
                let rest = String(chars[(i + 1)...].prefix(4))
                if rest.hasPrefix("?=") || rest.hasPrefix("?!") || rest.hasPrefix("?<=") || rest.hasPrefix("?<!") {
                    throw fail("lookaround is not supported")
                }
                if rest.hasPrefix("?>") { throw fail("atomic groups are not supported") }
                if rest.hasPrefix("?P<") {
                    out += "(?<"
                    i += 4
                    continue
                }
                out.append(c)
            case "{":
                // RE2 reads a brace that does not open `{n}`, `{n,}` or `{n,m}` as a literal; ICU does not.
                out += Self.opensCountedRepetition(chars, at: i) ? "{" : "\\{"
            case "*", "+", "?", "}":
                let closesRepeat = c != "}" || Self.closesCountedRepetition(chars, at: i)
                out += closesRepeat ? String(c) : "\\}"
                if closesRepeat && i + 1 < chars.count && chars[i + 1] == "+" {
                    throw fail("bad repetition operator \(c)+")
                }
            case ".":
                out += dotAll ? "." : "[^\\n]"
            case "$":
                out += multiLine ? "$" : "\\z"
            default:
                out.append(c)
            }
            i += 1
        }
        if inClass { throw fail("missing ]") }
        return out
    }
}

/// Why a pattern cannot be compiled.
public struct RE2RegexError: Error, Hashable, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// An RE2 rewrite string split into literal text and group references.
private struct RewriteTemplate {
    enum Piece { case literal(String), group(Int) }
    var pieces: [Piece] = []
    var maxGroup = 0

    init(_ text: String) {
        var literal = ""
        var iterator = text.makeIterator()
        while let c = iterator.next() {
            guard c == "\\" else { literal.append(c); continue }
            guard let n = iterator.next() else { break }  // RE2 stops at a malformed rewrite.
            if n == "\\" {
                literal.append("\\")
            } else if let digit = n.wholeNumberValue, n.isASCII {
                if !literal.isEmpty { pieces.append(.literal(literal)); literal = "" }
                pieces.append(.group(digit))
                maxGroup = max(maxGroup, digit)
            } else {
                break  // RE2 stops at an invalid escape.
            }
        }
        if !literal.isEmpty { pieces.append(.literal(literal)) }
    }

    func append(to out: inout String, match: NSTextCheckingResult, in text: NSString) {
        for piece in pieces {
            switch piece {
            case .literal(let s): out += s
            case .group(let n):
                let r = match.range(at: n)
                if r.location != NSNotFound { out += text.substring(with: r) }
            }
        }
    }
}
