import SluiceModel

/// A format string that Envoy's config loading would reject, with where and why.
public struct AccessLogFormatError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Problem: Error, Hashable, Sendable {
        case unknownOperator(String)
        case missingArgument(String)
        case unexpectedArgument(String)
        case badHeaderArgument(String, String)
        case unterminated
        case badTruncation(String)
    }

    public var format: String
    /// Offset (in characters) of the `%` that starts the bad command.
    public var position: Int
    public var problem: Problem

    public var description: String {
        let what: String
        switch problem {
        case .unknownOperator(let name): what = "unknown command operator %\(name)% (not supported by Sluice or Envoy)"
        case .missingArgument(let name): what = "%\(name)% needs a header name: %\(name)(NAME)%"
        case .unexpectedArgument(let name): what = "%\(name)% takes no argument"
        case .badHeaderArgument(let name, let argument):
            what = "%\(name)(\(argument))%: expected NAME or NAME?ALTERNATIVE"
        case .unterminated: what = "no valid command operator (missing closing %)"
        case .badTruncation(let text): what = "bad length :\(text)"
        }
        return "access log format \"\(format)\": at position \(position): \(what)"
    }
}

/// A compiled Envoy format string (`%START_TIME% "%REQ(:METHOD)%" ...`): text and command operators.
///
/// Used for access log lines and for header values (`request_headers_to_add`), where a missing value
/// is empty rather than `-`.
public struct FormatString: Hashable, Sendable {
    public enum Piece: Hashable, Sendable {
        case text(String)
        /// An operator and its `:N` length limit.
        case command(CommandOperator, maxLength: Int?)
    }

    public let pieces: [Piece]
    public let source: String

    /// Compiles `format`; fails on an unknown or malformed operator, naming it and its position.
    public init(_ format: String) throws(AccessLogFormatError) {
        source = format
        var pieces: [Piece] = []
        var text = ""
        let characters = Array(format)
        var index = 0
        while index < characters.count {
            let character = characters[index]
            guard character == "%" else {
                text.append(character)
                index += 1
                continue
            }
            if index + 1 < characters.count, characters[index + 1] == "%" {
                text.append("%")
                index += 2
                continue
            }
            let start = index
            var cursor = index + 1
            var name = ""
            while cursor < characters.count, characters[cursor].isASCII,
                  characters[cursor].isUppercase || characters[cursor].isNumber || characters[cursor] == "_" {
                name.append(characters[cursor])
                cursor += 1
            }
            guard !name.isEmpty else { throw AccessLogFormatError(format: format, position: start, problem: .unterminated) }
            var argument: String?
            if cursor < characters.count, characters[cursor] == "(" {
                guard let close = characters[(cursor + 1)...].firstIndex(of: ")") else {
                    throw AccessLogFormatError(format: format, position: start, problem: .unterminated)
                }
                argument = String(characters[(cursor + 1)..<close])
                cursor = close + 1
            }
            var maxLength: Int?
            if cursor < characters.count, characters[cursor] == ":" {
                var digits = ""
                cursor += 1
                while cursor < characters.count, let _ = characters[cursor].wholeNumberValue, characters[cursor].isASCII {
                    digits.append(characters[cursor])
                    cursor += 1
                }
                guard let length = Int(digits), length > 0 else {
                    throw AccessLogFormatError(format: format, position: start, problem: .badTruncation(digits))
                }
                maxLength = length
            }
            guard cursor < characters.count, characters[cursor] == "%" else {
                throw AccessLogFormatError(format: format, position: start, problem: .unterminated)
            }
            switch CommandOperator.parse(name: name, argument: argument) {
            case .success(let command):
                if !text.isEmpty { pieces.append(.text(text)) }
                text = ""
                pieces.append(.command(command, maxLength: maxLength))
            case .failure(let problem):
                throw AccessLogFormatError(format: format, position: start, problem: problem)
            }
            index = cursor + 1
        }
        if !text.isEmpty { pieces.append(.text(text)) }
        self.pieces = pieces
    }

    /// The formatted text. `omitEmptyValues`: a missing value is empty instead of `-` (header values).
    public func format(_ entry: AccessLogEntry, omitEmptyValues: Bool = false) -> String {
        var out = ""
        for piece in pieces {
            switch piece {
            case .text(let text): out += text
            case .command(let command, let maxLength):
                out += Self.text(command.value(entry), maxLength: maxLength, missing: omitEmptyValues ? "" : "-")
            }
        }
        return out
    }

    /// The value of a format that is exactly one operator keeps its type (JSON numbers, null);
    /// anything else is the formatted string.
    public func typedValue(_ entry: AccessLogEntry) -> CommandOperator.Value {
        if pieces.count == 1, case .command(let command, let maxLength) = pieces[0] {
            let value = command.value(entry)
            if case .string(let text) = value, let maxLength { return .string(Self.truncated(text, maxLength)) }
            return value
        }
        return .string(format(entry))
    }

    static func text(_ value: CommandOperator.Value, maxLength: Int?, missing: String) -> String {
        switch value {
        case .string(let text): return maxLength.map { truncated(text, $0) } ?? text
        case .number(let number): return String(number)
        case .missing: return missing
        }
    }

    /// The first `length` bytes, as Envoy truncates, without splitting a UTF-8 sequence.
    static func truncated(_ text: String, _ length: Int) -> String {
        guard text.utf8.count > length else { return text }
        var bytes = Array(text.utf8.prefix(length))
        while !bytes.isEmpty, String(validating: bytes, as: UTF8.self) == nil { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }
}
