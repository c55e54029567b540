import NIOHTTP1

/// Case-insensitive ASCII comparisons over UTF-8 without allocating lowercased copies (and
/// without Foundation's `contains`, which bridges through NSString): header names and tokens
/// are compared on every request.
extension StringProtocol {
    /// Whether the text starts with `prefix`, which must be lowercase ASCII.
    func hasASCIICaseInsensitivePrefix(_ prefix: StaticString) -> Bool {
        let count = prefix.utf8CodeUnitCount
        var index = 0
        for byte in utf8 {
            if index == count { return true }
            if Self.lowercased(byte) != prefix.utf8Start[index] { return false }
            index += 1
        }
        return index == count
    }

    /// Whether the text equals `other`, which must be lowercase ASCII, ignoring case.
    func equalsASCIICaseInsensitive(_ other: StaticString) -> Bool {
        utf8.count == other.utf8CodeUnitCount && hasASCIICaseInsensitivePrefix(other)
    }

    /// Whether the text contains `needle`, which must be lowercase ASCII.
    func containsASCIICaseInsensitive(_ needle: StaticString) -> Bool {
        let count = needle.utf8CodeUnitCount
        guard count > 0 else { return true }
        var start = utf8.startIndex
        while start != utf8.endIndex {
            var index = start
            var offset = 0
            while offset < count, index != utf8.endIndex, Self.lowercased(utf8[index]) == needle.utf8Start[offset] {
                offset += 1
                index = utf8.index(after: index)
            }
            if offset == count { return true }
            start = utf8.index(after: start)
        }
        return false
    }

    /// Whether the text contains the ASCII byte `byte`.
    func containsASCII(_ byte: UInt8) -> Bool {
        utf8.contains(byte)
    }

    private static func lowercased(_ byte: UInt8) -> UInt8 {
        byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
    }
}

extension HTTPHeaders {
    /// Whether any `name` header's value contains `token` (lowercase ASCII), ignoring case.
    func anyValue(of name: StaticString, containsASCIICaseInsensitive token: StaticString) -> Bool {
        contains { $0.name.equalsASCIICaseInsensitive(name) && $0.value.containsASCIICaseInsensitive(token) }
    }
}
