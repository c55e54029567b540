import SluiceModel

/// A response a filter sends instead of forwarding the request (Envoy's `sendLocalReply`).
///
/// The connection manager turns it into a response: for a gRPC request it answers HTTP 200 with
/// `grpc-status` (given here, or mapped from `status` as Envoy does) and `grpc-message: body`;
/// otherwise `status` with `body` as `text/plain`.
public struct FilterLocalReply: Hashable, Sendable {
    public var status: Int
    public var body: String
    /// Set when the filter names a gRPC status itself (fault abort with `grpc_status`).
    public var grpcStatus: Int?
    /// Added to the reply (after the connection manager's own headers).
    public var headers: [(name: String, value: String)]
    /// `%RESPONSE_CODE_DETAILS%`.
    public var details: String
    /// Flags the filter sets on the stream.
    public var flags: ResponseFlags

    public init(status: Int, body: String, grpcStatus: Int? = nil, headers: [(name: String, value: String)] = [],
                details: String, flags: ResponseFlags = []) {
        self.status = status
        self.body = body
        self.grpcStatus = grpcStatus
        self.headers = headers
        self.details = details
        self.flags = flags
    }

    public static func == (lhs: FilterLocalReply, rhs: FilterLocalReply) -> Bool {
        lhs.status == rhs.status && lhs.body == rhs.body && lhs.grpcStatus == rhs.grpcStatus
            && lhs.headers.map(\.name) == rhs.headers.map(\.name) && lhs.headers.map(\.value) == rhs.headers.map(\.value)
            && lhs.details == rhs.details && lhs.flags == rhs.flags
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(status)
        hasher.combine(body)
        hasher.combine(details)
    }
}

extension FractionalPercent {
    /// Draws one value and tells whether it falls inside the fraction (Envoy's `featureEnabled`).
    func sample(_ random: inout some RandomNumberGenerator) -> Bool {
        if numerator == 0 || denominator == 0 { return false }
        if numerator >= denominator { return true }
        return includes(random.next())
    }
}
