/// `normalize_path` (RFC 3986 dot-segment removal) and `merge_slashes` on a request path; the
/// query string is left alone.
enum PathNormalization {
    static func normalize(_ target: String, removeDotSegments: Bool, mergeSlashes: Bool) -> String {
        let queryStart = target.firstIndex { $0 == "?" || $0 == "#" }
        var path = String(target[..<(queryStart ?? target.endIndex)])
        let rest = queryStart.map { String(target[$0...]) } ?? ""
        guard path.hasPrefix("/") else { return target }
        if removeDotSegments, path.contains(".") {
            var output: [Substring] = []
            let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
            for (index, segment) in segments.enumerated() {
                let last = index == segments.count - 1
                switch segment {
                case ".":
                    if last { output.append("") }
                case "..":
                    if !output.isEmpty { output.removeLast() }
                    if last { output.append("") }
                default:
                    output.append(segment)
                }
            }
            path = "/" + output.joined(separator: "/")
        }
        if mergeSlashes, path.contains("//") {
            var merged = ""
            var previousSlash = false
            for character in path {
                if character == "/", previousSlash { continue }
                previousSlash = character == "/"
                merged.append(character)
            }
            path = merged
        }
        return path + rest
    }
}
