import SluiceModel
import SluiceXDSTypes
import SwiftProtobuf

/// Matchers, header options and percentages shared by routes and HTTP filters.
extension TranslationContext {
    /// `type.matcher.v3.StringMatcher`; `custom` is left to the support check.
    mutating func stringMatcher(_ matcher: Envoy_Type_Matcher_V3_StringMatcher, path: String) -> StringMatcher? {
        switch matcher.matchPattern {
        case .exact(let value)?: return StringMatcher(.exact(value), ignoreCase: matcher.ignoreCase)
        case .prefix(let value)?:
            if value.isEmpty { invalid(child(path, "prefix"), "the prefix must not be empty") }
            return StringMatcher(.prefix(value), ignoreCase: matcher.ignoreCase)
        case .suffix(let value)?:
            if value.isEmpty { invalid(child(path, "suffix"), "the suffix must not be empty") }
            return StringMatcher(.suffix(value), ignoreCase: matcher.ignoreCase)
        case .contains(let value)?:
            if value.isEmpty { invalid(child(path, "contains"), "the substring must not be empty") }
            return StringMatcher(.contains(value), ignoreCase: matcher.ignoreCase)
        case .safeRegex(let regexMatcher)?:
            // Envoy ignores ignore_case for regexes.
            guard let pattern = regex(regexMatcher, path: child(path, "safe_regex")) else { return nil }
            return StringMatcher(.regex(pattern))
        case .custom?:
            return nil  // reported by the support check
        case nil:
            invalid(path, "a string matcher needs exact, prefix, suffix, contains or safe_regex")
            return nil
        }
    }

    /// The pattern of a `RegexMatcher`; compiled by the data path, only checked for presence here.
    mutating func regex(_ matcher: Envoy_Type_Matcher_V3_RegexMatcher, path: String) -> String? {
        if matcher.regex.isEmpty {
            invalid(child(path, "regex"), "the regex must not be empty")
            return nil
        }
        return matcher.regex
    }

    /// `route.v3.HeaderMatcher` in every form, the deprecated direct ones included.
    mutating func headerMatcher(_ matcher: Envoy_Config_Route_V3_HeaderMatcher, path: String) -> HeaderMatcher? {
        if matcher.name.isEmpty { invalid(child(path, "name"), "the header name must not be empty") }
        let rule: HeaderMatcher.Rule
        switch matcher.headerMatchSpecifier {
        case .exactMatch(let value)?: rule = .string(StringMatcher(.exact(value)))
        case .prefixMatch(let value)?:
            if value.isEmpty { invalid(child(path, "prefix_match"), "the prefix must not be empty") }
            rule = .string(StringMatcher(.prefix(value)))
        case .suffixMatch(let value)?:
            if value.isEmpty { invalid(child(path, "suffix_match"), "the suffix must not be empty") }
            rule = .string(StringMatcher(.suffix(value)))
        case .containsMatch(let value)?:
            if value.isEmpty { invalid(child(path, "contains_match"), "the substring must not be empty") }
            rule = .string(StringMatcher(.contains(value)))
        case .safeRegexMatch(let regexMatcher)?:
            guard let pattern = regex(regexMatcher, path: child(path, "safe_regex_match")) else { return nil }
            rule = .string(StringMatcher(.regex(pattern)))
        case .rangeMatch(let range)?: rule = .range(start: range.start, end: range.end)
        case .presentMatch(let present)?: rule = .present(present)
        case .stringMatch(let string)?:
            guard let translated = stringMatcher(string, path: child(path, "string_match")) else { return nil }
            rule = .string(translated)
        case nil:
            // Envoy: no specifier matches any request that has the header.
            rule = .present(true)
        }
        return HeaderMatcher(
            name: matcher.name, rule: rule, invert: matcher.invertMatch,
            treatMissingAsEmpty: matcher.treatMissingHeaderAsEmpty)
    }

    mutating func headerMatchers(_ matchers: [Envoy_Config_Route_V3_HeaderMatcher], path: String) -> [HeaderMatcher] {
        matchers.enumerated().compactMap { headerMatcher($1, path: "\(path)[\($0)]") }
    }

    /// `type.v3.FractionalPercent`.
    func fraction(_ percent: Envoy_Type_V3_FractionalPercent) -> FractionalPercent {
        let denominator: UInt32
        switch percent.denominator {
        case .hundred: denominator = 100
        case .tenThousand: denominator = 10_000
        case .million: denominator = 1_000_000
        case .UNRECOGNIZED: denominator = 100
        }
        // Envoy caps a numerator above the denominator at 100 %.
        return FractionalPercent(numerator: min(percent.numerator, denominator), denominator: denominator)
    }

    /// `core.v3.RuntimeFractionalPercent`: only `default_value` (Sluice has no runtime).
    func runtimeFraction(_ percent: Envoy_Config_Core_V3_RuntimeFractionalPercent, present: Bool, default value: FractionalPercent)
        -> FractionalPercent
    {
        guard present else { return value }
        return percent.hasDefaultValue ? fraction(percent.defaultValue) : .none
    }

    /// `core.v3.HeaderValueOption` list, with Envoy's rule that pseudo-headers and `host` are never set.
    mutating func headerValueOptions(_ options: [Envoy_Config_Core_V3_HeaderValueOption], path: String) -> [HeaderValueOption] {
        var result: [HeaderValueOption] = []
        for (index, option) in options.enumerated() {
            let optionPath = "\(path)[\(index)]"
            let key = option.header.key
            if key.isEmpty {
                invalid(child(optionPath, "header.key"), "the header name must not be empty")
                continue
            }
            if key.hasPrefix(":") || key.lowercased() == "host" {
                invalid(child(optionPath, "header.key"), ":-prefixed or host headers may not be modified")
                continue
            }
            var action: HeaderValueOption.AppendAction
            switch option.appendAction {
            case .appendIfExistsOrAdd: action = .appendIfExistsOrAdd
            case .addIfAbsent: action = .addIfAbsent
            case .overwriteIfExistsOrAdd: action = .overwriteIfExistsOrAdd
            case .overwriteIfExists: action = .overwriteIfExists
            case .UNRECOGNIZED(let value):
                invalid(child(optionPath, "append_action"), "unknown append action \(value)")
                continue
            }
            if option.hasAppend {
                if option.appendAction != .appendIfExistsOrAdd {
                    invalid(optionPath, "Both append and append_action are set and it's not allowed")
                    continue
                }
                action = option.append.value ? .appendIfExistsOrAdd : .overwriteIfExistsOrAdd
            }
            let value = option.header.value.isEmpty && !option.header.rawValue.isEmpty
                ? String(decoding: option.header.rawValue, as: UTF8.self) : option.header.value
            result.append(HeaderValueOption(name: key, value: value, action: action, keepEmptyValue: option.keepEmptyValue))
        }
        return result
    }

    /// Names in `*_headers_to_remove`; pseudo-headers and `host` cannot be removed.
    mutating func headersToRemove(_ names: [String], path: String) -> [String] {
        var result: [String] = []
        for (index, name) in names.enumerated() {
            if name.isEmpty {
                invalid("\(path)[\(index)]", "the header name must not be empty")
            } else if name.hasPrefix(":") || name.lowercased() == "host" {
                invalid("\(path)[\(index)]", ":-prefixed or host headers may not be removed")
            } else {
                result.append(name)
            }
        }
        return result
    }

    /// The four header lists of one route-table level.
    mutating func headerMutations(
        requestAdd: [Envoy_Config_Core_V3_HeaderValueOption], requestRemove: [String],
        responseAdd: [Envoy_Config_Core_V3_HeaderValueOption], responseRemove: [String], path: String
    ) -> HeaderMutations {
        HeaderMutations(
            requestHeadersToAdd: headerValueOptions(requestAdd, path: child(path, "request_headers_to_add")),
            requestHeadersToRemove: headersToRemove(requestRemove, path: child(path, "request_headers_to_remove")),
            responseHeadersToAdd: headerValueOptions(responseAdd, path: child(path, "response_headers_to_add")),
            responseHeadersToRemove: headersToRemove(responseRemove, path: child(path, "response_headers_to_remove")))
    }

    /// A duration field that Envoy reads as "0 disables".
    func optionalDuration(_ duration: Google_Protobuf_Duration, present: Bool, default value: Duration?) -> Duration? {
        guard present else { return value }
        return duration.isPositive ? duration.swiftDuration : nil
    }
}
