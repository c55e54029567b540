import SluiceModel

/// Command operators in header values (`request_headers_to_add`), evaluated against the request.
enum HeaderValueFormatter {
    static func format(_ value: String, request: HTTPRequestContext) -> String {
        var result = ""
        var rest = Substring(value)
        while let start = rest.firstIndex(of: "%") {
            result += rest[..<start]
            let afterStart = rest.index(after: start)
            guard let end = rest[afterStart...].firstIndex(of: "%") else {
                result += rest[start...]
                return result
            }
            let name = rest[afterStart..<end]
            if name.isEmpty {
                result += "%"
            } else {
                result += evaluate(String(name), request: request) ?? ""
            }
            rest = rest[rest.index(after: end)...]
        }
        return result + rest
    }

    private static func evaluate(_ command: String, request: HTTPRequestContext) -> String? {
        switch command {
        case "DOWNSTREAM_REMOTE_ADDRESS": return request.remote.description
        case "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": return request.remote.address.description
        case "DOWNSTREAM_DIRECT_REMOTE_ADDRESS": return request.directRemote.description
        case "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT": return request.directRemote.address.description
        case "DOWNSTREAM_LOCAL_ADDRESS": return request.local.description
        case "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT": return request.local.address.description
        case "DOWNSTREAM_LOCAL_PORT": return String(request.local.port)
        case "PROTOCOL": return request.protocolName
        default:
            if command.hasPrefix("REQ("), command.hasSuffix(")") {
                let name = command.dropFirst(4).dropLast().lowercased()
                return request.value(of: name)
            }
            return nil
        }
    }
}
