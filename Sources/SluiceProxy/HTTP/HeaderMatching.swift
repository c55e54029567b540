import NIOHTTP1
import SluiceModel

/// Header matching on plain header lists (responses, where no route table is involved); string
/// rules are the filters' `FilterMatching`.
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
            result = value.map { FilterMatching.matches(string, $0) } ?? false
        }
        return result != matcher.invert
    }
}
