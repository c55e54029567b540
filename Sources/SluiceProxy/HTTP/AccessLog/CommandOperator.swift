#if canImport(Glibc)
import Glibc
#endif
import NIOHTTP1
import SluiceModel

/// One of Envoy's command operators (`%UPSTREAM_HOST%`, `%REQ(X?Y)%`, …), compiled.
public enum CommandOperator: Hashable, Sendable {
    case startTime(StartTimeFormat)
    /// `%REQ(main?alternative)%` (also spelled `%REQUEST_HEADER(...)%`; `RESP`/`RESPONSE_HEADER` and
    /// `TRAILER`/`RESPONSE_TRAILER` likewise).
    case requestHeader(String, alternative: String?)
    /// `%REQ_WITHOUT_QUERY(main?alternative)%`: a path header without its query string.
    case requestHeaderWithoutQuery(String, alternative: String?)
    case responseHeader(String, alternative: String?)
    case responseTrailer(String, alternative: String?)
    case field(Field)

    /// Operators that take no argument.
    public enum Field: String, Hashable, Sendable, CaseIterable {
        case protocolName = "PROTOCOL"
        case responseCode = "RESPONSE_CODE"
        case responseCodeDetails = "RESPONSE_CODE_DETAILS"
        case connectionTerminationDetails = "CONNECTION_TERMINATION_DETAILS"
        case responseFlags = "RESPONSE_FLAGS"
        case responseFlagsLong = "RESPONSE_FLAGS_LONG"
        case bytesReceived = "BYTES_RECEIVED"
        case bytesSent = "BYTES_SENT"
        case duration = "DURATION"
        case requestDuration = "REQUEST_DURATION"
        case responseDuration = "RESPONSE_DURATION"
        case responseTxDuration = "RESPONSE_TX_DURATION"
        case upstreamHost = "UPSTREAM_HOST"
        case upstreamRemoteAddress = "UPSTREAM_REMOTE_ADDRESS"
        case upstreamCluster = "UPSTREAM_CLUSTER"
        case upstreamLocalAddress = "UPSTREAM_LOCAL_ADDRESS"
        case upstreamTransportFailureReason = "UPSTREAM_TRANSPORT_FAILURE_REASON"
        case upstreamRequestAttemptCount = "UPSTREAM_REQUEST_ATTEMPT_COUNT"
        case downstreamRemoteAddress = "DOWNSTREAM_REMOTE_ADDRESS"
        case downstreamRemoteAddressWithoutPort = "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT"
        case downstreamRemotePort = "DOWNSTREAM_REMOTE_PORT"
        case downstreamDirectRemoteAddress = "DOWNSTREAM_DIRECT_REMOTE_ADDRESS"
        case downstreamDirectRemoteAddressWithoutPort = "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT"
        case downstreamDirectRemotePort = "DOWNSTREAM_DIRECT_REMOTE_PORT"
        case downstreamLocalAddress = "DOWNSTREAM_LOCAL_ADDRESS"
        case downstreamLocalAddressWithoutPort = "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT"
        case downstreamLocalPort = "DOWNSTREAM_LOCAL_PORT"
        case requestedServerName = "REQUESTED_SERVER_NAME"
        case routeName = "ROUTE_NAME"
        case hostname = "HOSTNAME"
        case connectionID = "CONNECTION_ID"
    }

    /// A value as an operator produces it: typed, so JSON logs can print numbers as numbers.
    public enum Value: Hashable, Sendable {
        case string(String)
        case number(Int64)
        /// Not available: `-` in text, `null` in JSON, empty in header values.
        case missing
    }

    /// Parses an operator from its name and `(argument)`; the error says what is wrong.
    static func parse(name: String, argument: String?) -> Result<CommandOperator, AccessLogFormatError.Problem> {
        switch name {
        case "START_TIME":
            return .success(.startTime(argument.map(StartTimeFormat.init) ?? .envoyDefault))
        case "REQ", "RESP", "TRAILER", "REQ_WITHOUT_QUERY", "REQUEST_HEADER", "RESPONSE_HEADER", "RESPONSE_TRAILER":
            guard let argument else { return .failure(.missingArgument(name)) }
            let parts = argument.split(separator: "?", omittingEmptySubsequences: false).map { $0.lowercased() }
            guard parts.count <= 2, parts.allSatisfy({ !$0.isEmpty }) else { return .failure(.badHeaderArgument(name, argument)) }
            let main = parts[0]
            let alternative = parts.count == 2 ? parts[1] : nil
            switch name {
            case "REQ", "REQUEST_HEADER": return .success(.requestHeader(main, alternative: alternative))
            case "RESP", "RESPONSE_HEADER": return .success(.responseHeader(main, alternative: alternative))
            case "TRAILER", "RESPONSE_TRAILER": return .success(.responseTrailer(main, alternative: alternative))
            default: return .success(.requestHeaderWithoutQuery(main, alternative: alternative))
            }
        default:
            guard let field = Field(rawValue: name) else { return .failure(.unknownOperator(name)) }
            if argument != nil { return .failure(.unexpectedArgument(name)) }
            return .success(.field(field))
        }
    }

    /// This operator's value for an entry.
    public func value(_ entry: AccessLogEntry) -> Value {
        switch self {
        case .startTime(let format): return .string(format.format(entry.startTime))
        case .requestHeader(let main, let alternative):
            return Self.string(Self.requestHeader(entry, main) ?? alternative.flatMap { Self.requestHeader(entry, $0) })
        case .requestHeaderWithoutQuery(let main, let alternative):
            let value = Self.requestHeader(entry, main) ?? alternative.flatMap { Self.requestHeader(entry, $0) }
            return Self.string(value.map { text in
                text.firstIndex(where: { $0 == "?" }).map { String(text[..<$0]) } ?? text
            })
        case .responseHeader(let main, let alternative):
            return Self.string(Self.responseHeader(entry, main) ?? alternative.flatMap { Self.responseHeader(entry, $0) })
        case .responseTrailer(let main, let alternative):
            let trailers = entry.responseTrailers
            return Self.string(trailers?.first(name: main) ?? alternative.flatMap { trailers?.first(name: $0) })
        case .field(let field): return Self.value(field, entry)
        }
    }

    private static func value(_ field: Field, _ entry: AccessLogEntry) -> Value {
        switch field {
        case .protocolName: return string(entry.request?.protocolName)
        case .responseCode: return .number(Int64(entry.responseCode ?? 0))
        case .responseCodeDetails: return string(entry.responseCodeDetails)
        case .connectionTerminationDetails: return string(entry.connectionTerminationDetails)
        case .responseFlags: return .string(entry.responseFlags.shortString)
        case .responseFlagsLong: return .string(entry.responseFlags.longString)
        case .bytesReceived: return .number(Int64(clamping: entry.bytesReceived))
        case .bytesSent: return .number(Int64(clamping: entry.bytesSent))
        case .duration: return milliseconds(entry.duration)
        case .requestDuration: return milliseconds(entry.requestDuration)
        case .responseDuration: return milliseconds(entry.responseDuration)
        case .responseTxDuration: return milliseconds(entry.responseTxDuration)
        case .upstreamHost, .upstreamRemoteAddress: return string(entry.upstreamHost?.description)
        case .upstreamCluster: return string(entry.upstreamCluster)
        case .upstreamLocalAddress: return string(entry.upstreamLocalAddress?.description)
        case .upstreamTransportFailureReason: return string(entry.upstreamTransportFailureReason)
        case .upstreamRequestAttemptCount: return .number(Int64(entry.upstreamRequestAttemptCount ?? 0))
        case .downstreamRemoteAddress: return string(entry.downstreamRemote?.description)
        case .downstreamRemoteAddressWithoutPort: return string(entry.downstreamRemote.map { "\($0.address)" })
        case .downstreamRemotePort: return entry.downstreamRemote.map { .number(Int64($0.port)) } ?? .missing
        case .downstreamDirectRemoteAddress: return string(entry.downstreamDirectRemote?.description)
        case .downstreamDirectRemoteAddressWithoutPort: return string(entry.downstreamDirectRemote.map { "\($0.address)" })
        case .downstreamDirectRemotePort: return entry.downstreamDirectRemote.map { .number(Int64($0.port)) } ?? .missing
        case .downstreamLocalAddress: return string(entry.downstreamLocal?.description)
        case .downstreamLocalAddressWithoutPort: return string(entry.downstreamLocal.map { "\($0.address)" })
        case .downstreamLocalPort: return entry.downstreamLocal.map { .number(Int64($0.port)) } ?? .missing
        case .requestedServerName: return string(entry.requestedServerName)
        case .routeName: return string(entry.routeName)
        case .hostname: return .string(hostName)
        case .connectionID: return entry.connectionID.map { .number(Int64(clamping: $0)) } ?? .missing
        }
    }

    /// Empty strings are missing, as in Envoy.
    private static func string(_ text: String?) -> Value {
        guard let text, !text.isEmpty else { return .missing }
        return .string(text)
    }

    /// Whole milliseconds, truncated.
    private static func milliseconds(_ duration: Duration?) -> Value {
        guard let duration else { return .missing }
        let parts = duration.components
        return .number(parts.seconds * 1000 + parts.attoseconds / 1_000_000_000_000_000)
    }

    private static func requestHeader(_ entry: AccessLogEntry, _ name: String) -> String? {
        guard let request = entry.request else { return nil }
        switch name {
        case ":path", ":authority", ":method", ":scheme", "host": return request.value(of: name)
        default: return request.headers.first(name: name)
        }
    }

    private static func responseHeader(_ entry: AccessLogEntry, _ name: String) -> String? {
        if name == ":status" { return entry.responseCode.map(String.init) }
        return entry.responseHeaders?.first(name: name)
    }

    /// This machine's host name (`%HOSTNAME%`), read once.
    static let hostName: String = {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "-" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }()
}
