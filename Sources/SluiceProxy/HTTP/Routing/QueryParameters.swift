/// A request's query parameters as Envoy's `QueryParamsMulti::parseQueryString` reads them:
/// everything after the first `?`, split on `&`, each at its first `=`, nothing percent-decoded;
/// a parameter without `=` has the empty value.
struct QueryParameters: Sendable {
    private var pairs: [(name: Substring, value: Substring)] = []

    init(path: String) {
        guard let question = path.firstIndex(of: "?") else { return }
        let query = path[path.index(after: question)...]
        for piece in query.split(separator: "&", omittingEmptySubsequences: false) where !piece.isEmpty {
            if let equal = piece.firstIndex(of: "=") {
                pairs.append((piece[..<equal], piece[piece.index(after: equal)...]))
            } else {
                pairs.append((piece, ""))
            }
        }
    }

    /// The first value of `name`, if the parameter occurs.
    func first(_ name: String) -> String? {
        pairs.first(where: { $0.name == name }).map { String($0.value) }
    }
}
