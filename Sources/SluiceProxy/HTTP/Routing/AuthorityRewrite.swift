import Foundation
import NIOHTTP1

/// Envoy's `Http::Utility::updateAuthority`, for applying a `ForwardPlan`'s host rewrite.
public enum AuthorityRewrite {
    /// Sets `authority` to `newHost`. With `appendXForwardedHost` the old authority is appended to
    /// `x-forwarded-host` (one comma-joined value, as Envoy keeps it) unless it already is the last
    /// entry there (`append_xfh_idempotent`, on by default).
    public static func apply(_ newHost: String, authority: inout String, headers: inout HTTPHeaders,
                             appendXForwardedHost: Bool) {
        if appendXForwardedHost && !authority.isEmpty {
            let existing = headers["x-forwarded-host"].joined(separator: ",")
            if existing.isEmpty {
                headers.replaceOrAdd(name: "x-forwarded-host", value: authority)
            } else {
                let last = existing.split(separator: ",").last.map { $0.trimmingCharacters(in: .whitespaces) }
                if last != authority {
                    headers.replaceOrAdd(name: "x-forwarded-host", value: existing + "," + authority)
                }
            }
        }
        authority = newHost
    }
}
