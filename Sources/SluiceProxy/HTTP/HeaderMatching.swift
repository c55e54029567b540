import NIOHTTP1
import SluiceModel

/// Header matching on plain header lists (responses, where no route table is involved).
enum HeaderMatching {
    static func matches(_ matcher: HeaderMatcher, headers: HTTPHeaders) -> Bool {
        let values = headers[matcher.name]
        let value: String? = values.isEmpty ? (matcher.treatMissingAsEmpty ? "" : nil) : values.joined(separator: ",")
        let result: Bool
        switch matcher.rule {
        case .present(let present):
            result = (value != nil) == present
        case .range(let start, let end):
            result = value.flatMap { Int64($0) }.map { $0 >= start && $0 < end } ?? false
        case .string(let string):
            result = value.map { matches(string, $0) } ?? false
        }
        return result != matcher.invert
    }

    static func matches(_ matcher: StringMatcher, _ value: String) -> Bool {
        let subject = matcher.ignoreCase ? value.lowercased() : value
        func folded(_ text: String) -> String { matcher.ignoreCase ? text.lowercased() : text }
        switch matcher.pattern {
        case .exact(let text): return subject == folded(text)
        case .prefix(let text): return subject.hasPrefix(folded(text))
        case .suffix(let text): return subject.hasSuffix(folded(text))
        case .contains(let text): return subject.contains(folded(text))
        case .regex(let pattern):
            guard let regex = try? Regex(pattern) else { return false }
            return (try? regex.wholeMatch(in: value)) != nil
        }
    }
}
