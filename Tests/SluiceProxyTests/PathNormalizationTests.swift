@testable import SluiceProxy
import Testing

@Suite struct PathNormalizationTests {
    @Test(arguments: [
        ("/a/../b/c", "/b/c"), ("/a/./b/./c", "/a/b/c"), ("/../b", "/b"), ("/b/c/..", "/b/"), ("/b/c/.", "/b/c/"),
        ("/a/b?x=/../y", "/a/b?x=/../y"), ("/plain", "/plain"),
    ])
    func dotSegmentsAreRemoved(_ input: String, _ expected: String) {
        #expect(PathNormalization.normalize(input, removeDotSegments: true, mergeSlashes: false) == expected)
    }

    @Test func slashesMergeOutsideTheQuery() {
        #expect(PathNormalization.normalize("/x//y///z?q=//keep", removeDotSegments: false, mergeSlashes: true) == "/x/y/z?q=//keep")
        #expect(PathNormalization.normalize("//", removeDotSegments: true, mergeSlashes: true) == "/")
    }
}
