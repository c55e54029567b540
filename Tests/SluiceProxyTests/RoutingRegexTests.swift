@testable import SluiceProxy
import Testing

@Suite struct RoutingRegexTests {
    @Test func fullMatchSemantics() throws {
        #expect(try RE2Regex("a+").fullMatch("aaa"))
        #expect(try !RE2Regex("a+").fullMatch("aaab"))
        #expect(try RE2Regex("a|ab").fullMatch("ab"))
        // `$` is end of text and `.` stops only at "\n", as in RE2.
        #expect(try !RE2Regex("abc$").fullMatch("abc\n"))
        #expect(try RE2Regex("a.c").fullMatch("a\rc"))
        #expect(try !RE2Regex("a.c").fullMatch("a\nc"))
        // ASCII classes as RE2: \d does not match other scripts' digits.
        #expect(try !RE2Regex("\\d").fullMatch("٣"))
        #expect(try RE2Regex("[\\d]+").fullMatch("123"))
        #expect(try RE2Regex("(?P<v>[0-9]+)").fullMatch("42"))
        #expect(try RE2Regex("[]a]+").fullMatch("]a"))
        #expect(try RE2Regex("[[:alpha:]]+").fullMatch("abc"))
    }

    @Test func rejectsWhatRE2Rejects() {
        for pattern in ["(a)\\1", "a(?=b)", "a(?!b)", "(?<=a)b", "(?<!a)b", "(?>a)", "a*+", "a++", "abc\\Z", "[a-", "(a", "\\"] {
            #expect(throws: RE2RegexError.self, "\(pattern)") { try RE2Regex(pattern) }
        }
    }

    @Test func possessiveOnlyAfterARealRepetition() throws {
        #expect(throws: RE2RegexError.self) { try RE2Regex("a{2}+") }
        #expect(try RE2Regex("x}+").fullMatch("x}}"))
        // Braces that are no repetition are literals in RE2.
        #expect(try RE2Regex("a{").fullMatch("a{"))
        #expect(try RE2Regex("a{,2}").fullMatch("a{,2}"))
        #expect(try RE2Regex("a{2,}").fullMatch("aaa"))
        #expect(try RE2Regex("/v{1,2}").fullMatch("/vv"))
    }

    @Test func globalReplaceSemantics() throws {
        #expect(try RE2Regex("a*").replaceAll("baaa", with: "X") == "XbX")
        #expect(try RE2Regex("").replaceAll("abc", with: "-") == "-a-b-c-")
        #expect(try RE2Regex("o").replaceAll("foo", with: "0") == "f00")
        #expect(try RE2Regex("(b)(c)?").replaceAll("abd", with: "[\\2\\1]") == "a[b]d")
        // A group the pattern lacks: RE2 refuses and the input is unchanged.
        #expect(try RE2Regex("b").replaceAll("abc", with: "\\1") == "abc")
        #expect(try RE2Regex("x").replaceAll("abc", with: "y") == "abc")
        // `^` anchors at the start of the input only, not at each search position.
        #expect(try RE2Regex("^a").replaceAll("aaa", with: "b") == "baa")
    }
}
