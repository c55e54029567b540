#if canImport(Glibc)
import Glibc
#endif
import SluiceModel
@testable import SluiceProxy
import Testing

@Suite struct AccessLogFileTests {
    private func temporaryPath(_ name: String) -> String {
        "/tmp/sluice-accesslog-test-\(getpid())-\(name).log"
    }

    private func read(_ path: String) -> String {
        guard let handle = fopen(path, "r") else { return "" }
        defer { fclose(handle) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&buffer, 1, buffer.count, handle)
            if count <= 0 { break }
            out += buffer[0..<count]
        }
        return String(decoding: out, as: UTF8.self)
    }

    @Test func buffersUntilFlushed() throws {
        let path = temporaryPath("buffer")
        unlink(path)
        defer { unlink(path) }
        let file = AccessLogFile(path: path, flushInterval: .seconds(3600))
        file.write("one\n")
        file.write("two\n")
        #expect(read(path) == "")
        file.flush()
        #expect(read(path) == "one\ntwo\n")
        file.close()
    }

    @Test func flushesAtTheMinimumSizeWithoutBeingAsked() async throws {
        let path = temporaryPath("size")
        unlink(path)
        defer { unlink(path) }
        let file = AccessLogFile(path: path, flushInterval: .seconds(3600), minFlushSize: 8)
        file.write("0123456789\n")
        var waited = 0
        while read(path).isEmpty, waited < 200 {
            try await Task.sleep(for: .milliseconds(10))
            waited += 1
        }
        #expect(read(path) == "0123456789\n")
        file.close()
    }

    @Test func reopensAfterTheFileIsMovedAway() throws {
        let path = temporaryPath("reopen")
        unlink(path)
        defer { unlink(path); unlink(path + ".1") }
        let file = AccessLogFile(path: path, flushInterval: .seconds(3600))
        file.write("before\n")
        file.flush()
        rename(path, path + ".1")
        file.reopen()
        file.write("after\n")
        file.flush()
        #expect(read(path + ".1") == "before\n")
        #expect(read(path) == "after\n")
        file.close()
    }

    @Test func unwritablePathKeepsLinesForLater() throws {
        let directory = temporaryPath("dir")
        let path = directory + "/access.log"
        let file = AccessLogFile(path: path, flushInterval: .seconds(3600))
        file.write("kept\n")
        file.flush()
        mkdir(directory, 0o755)
        defer { unlink(path); rmdir(directory) }
        file.flush()
        #expect(read(path) == "kept\n")
        file.close()
    }

    @Test func loggersShareOneFilePerPath() throws {
        let files = AccessLogFiles()
        let path = temporaryPath("shared")
        unlink(path)
        defer { unlink(path) }
        let a = try AccessLogger(AccessLogConfig(path: path, format: .text("a %RESPONSE_CODE%\n")), files: files)
        let b = try AccessLogger(AccessLogConfig(path: path, format: .text("b %PROTOCOL%\n")), files: files)
        #expect(a.file === b.file)
        let entry = AccessLogEntry(request: FilterTestRequest.make(), startTime: WallClockTime(secondsSinceEpoch: 0),
                                   responseCode: 204)
        a.log(entry)
        b.log(entry)
        files.flushAll()
        #expect(read(path) == "a 204\nb HTTP/1.1\n")
        a.file.close()
    }
}
