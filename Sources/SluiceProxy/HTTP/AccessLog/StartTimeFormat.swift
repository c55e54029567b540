#if canImport(Glibc)
import Glibc
#endif

/// A `%START_TIME(...)%` format: strftime conversions in UTC plus Envoy's sub-second ones
/// (`%E<n>S` seconds with n fraction digits, `%<n>f` n fraction digits, `%f` nine, `%s` epoch seconds).
public struct StartTimeFormat: Hashable, Sendable {
    enum Token: Hashable, Sendable {
        case text(String)
        case conversion(Character)
        /// Seconds with this many fraction digits.
        case secondsWithFraction(Int)
        case fraction(Int)
    }

    let tokens: [Token]

    /// Envoy's default: `2026-11-23T03:44:13.123Z`.
    public static let envoyDefault = StartTimeFormat("%Y-%m-%dT%H:%M:%E3SZ")

    public init(_ pattern: String) {
        var tokens: [Token] = []
        var text = ""
        var characters = Array(pattern)[...]
        while let character = characters.popFirst() {
            guard character == "%", let next = characters.first else {
                text.append(character)
                continue
            }
            characters.removeFirst()
            var token: Token?
            if next == "E", characters.count >= 2, let digits = characters.first?.wholeNumberValue,
               characters.dropFirst().first == "S" {
                characters.removeFirst(2)
                token = .secondsWithFraction(digits)
            } else if next == "E", characters.count >= 2, characters.first == "*", characters.dropFirst().first == "S" {
                characters.removeFirst(2)
                token = .secondsWithFraction(9)
            } else if let digits = next.wholeNumberValue, digits > 0, characters.first == "f" {
                characters.removeFirst()
                token = .fraction(digits)
            } else if next == "f" {
                token = .fraction(9)
            } else if next == "%" {
                text.append("%")
            } else {
                token = .conversion(next)
            }
            if let token {
                if !text.isEmpty { tokens.append(.text(text)) }
                text = ""
                tokens.append(token)
            }
        }
        if !text.isEmpty { tokens.append(.text(text)) }
        self.tokens = tokens
    }

    private static let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
                                 "October", "November", "December"]
    private static let days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]

    /// The time as this format prints it, in UTC.
    public func format(_ time: WallClockTime) -> String {
        var seconds = time.nanosecondsSinceEpoch / 1_000_000_000
        var nanos = time.nanosecondsSinceEpoch % 1_000_000_000
        if nanos < 0 {
            nanos += 1_000_000_000
            seconds -= 1
        }
        var epoch = time_t(seconds)
        var parts = tm()
        gmtime_r(&epoch, &parts)
        var out = ""
        for token in tokens {
            switch token {
            case .text(let text): out += text
            case .secondsWithFraction(let digits):
                out += Self.pad(Int(parts.tm_sec), 2)
                if digits > 0 { out += "." + Self.fraction(nanos, digits) }
            case .fraction(let digits): out += Self.fraction(nanos, digits)
            case .conversion(let conversion): out += Self.convert(conversion, parts, seconds)
            }
        }
        return out
    }

    private static func convert(_ conversion: Character, _ t: tm, _ epochSeconds: Int64) -> String {
        let year = Int(t.tm_year) + 1900
        switch conversion {
        case "Y": return String(year)
        case "y": return pad(year % 100, 2)
        case "C": return pad(year / 100, 2)
        case "m": return pad(Int(t.tm_mon) + 1, 2)
        case "d": return pad(Int(t.tm_mday), 2)
        case "e": return pad(Int(t.tm_mday), 2, fill: " ")
        case "H": return pad(Int(t.tm_hour), 2)
        case "k": return pad(Int(t.tm_hour), 2, fill: " ")
        case "I": return pad((Int(t.tm_hour) + 11) % 12 + 1, 2)
        case "l": return pad((Int(t.tm_hour) + 11) % 12 + 1, 2, fill: " ")
        case "p": return t.tm_hour < 12 ? "AM" : "PM"
        case "M": return pad(Int(t.tm_min), 2)
        case "S": return pad(Int(t.tm_sec), 2)
        case "j": return pad(Int(t.tm_yday) + 1, 3)
        case "u": return String(t.tm_wday == 0 ? 7 : Int(t.tm_wday))
        case "w": return String(t.tm_wday)
        case "a": return String(days[Int(t.tm_wday)].prefix(3))
        case "A": return days[Int(t.tm_wday)]
        case "b", "h": return String(months[Int(t.tm_mon)].prefix(3))
        case "B": return months[Int(t.tm_mon)]
        case "F": return "\(year)-\(pad(Int(t.tm_mon) + 1, 2))-\(pad(Int(t.tm_mday), 2))"
        case "T": return "\(pad(Int(t.tm_hour), 2)):\(pad(Int(t.tm_min), 2)):\(pad(Int(t.tm_sec), 2))"
        case "R": return "\(pad(Int(t.tm_hour), 2)):\(pad(Int(t.tm_min), 2))"
        case "D": return "\(pad(Int(t.tm_mon) + 1, 2))/\(pad(Int(t.tm_mday), 2))/\(pad(year % 100, 2))"
        case "z": return "+0000"
        case "Z": return "UTC"
        case "s": return String(epochSeconds)
        case "n": return "\n"
        case "t": return "\t"
        default: return "%" + String(conversion)
        }
    }

    private static func pad(_ value: Int, _ width: Int, fill: Character = "0") -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: fill, count: width - digits.count) + digits
    }

    private static func fraction(_ nanos: Int64, _ digits: Int) -> String {
        let nine = pad(Int(nanos), 9)
        return digits <= 9 ? String(nine.prefix(digits)) : nine + String(repeating: "0", count: digits - 9)
    }
}
