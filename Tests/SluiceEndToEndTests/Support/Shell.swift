import Foundation

/// Runs commands for the end-to-end tests and keeps track of the processes it started, so
/// teardown ends exactly those (by PID).
enum Shell {
    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs a command to completion; stdin is empty.
    @discardableResult
    static func run(_ arguments: [String], timeout: TimeInterval = 120) throws -> Output {
        let stdout = try closeOnExecPipe()
        let stderr = try closeOnExecPipe()
        let child: ChildProcess
        do {
            child = try ChildProcess(arguments, stdout: stdout.write, stderr: stderr.write)
        } catch {
            for fd in [stdout.read, stdout.write, stderr.read, stderr.write] { close(fd) }
            throw error
        }
        close(stdout.write)
        close(stderr.write)
        let errorData = ReaderBox()
        let errorThread = Thread { errorData.set(FileHandle(fileDescriptor: stderr.read, closeOnDealloc: true).readDataToEndOfFile()) }
        errorThread.start()
        let output = FileHandle(fileDescriptor: stdout.read, closeOnDealloc: true).readDataToEndOfFile()
        let deadline = Date().addingTimeInterval(timeout)
        while child.isRunning {
            if Date() > deadline {
                kill(child.pid, SIGKILL)
                child.waitUntilExit()
                throw ShellError("timed out after \(Int(timeout))s: \(arguments.joined(separator: " "))")
            }
            usleep(10_000)
        }
        return Output(
            status: child.terminationStatus,
            stdout: String(decoding: output, as: UTF8.self),
            stderr: String(decoding: errorData.wait(), as: UTF8.self))
    }

    /// Runs and throws unless it succeeds; returns stdout.
    @discardableResult
    static func check(_ arguments: [String], timeout: TimeInterval = 120) throws -> String {
        let output = try run(arguments, timeout: timeout)
        guard output.status == 0 else {
            throw ShellError("\(arguments.joined(separator: " ")) exited \(output.status): \(output.stderr)\(output.stdout)")
        }
        return output.stdout
    }
}

/// A long-running process started by a test; its output goes to a log file.
final class BackgroundProcess: @unchecked Sendable {
    let process: ChildProcess
    let logFile: URL
    let name: String

    init(_ arguments: [String], name: String, logDirectory: URL) throws {
        self.name = name
        logFile = logDirectory.appendingPathComponent("\(name).log")
        let log = open(logFile.path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o644)
        guard log >= 0 else { throw ShellError("cannot create \(logFile.path): \(String(cString: strerror(errno)))") }
        // The child has its own copy; keeping ours would hold a descriptor per process.
        defer { close(log) }
        process = try ChildProcess(arguments, stdout: log, stderr: log)
        Self.record(process.pid)
    }

    /// Appends the PID and its start time to `$SLUICE_E2E_PIDFILE`, so Scripts/test can end
    /// exactly these processes if a run is killed before its teardown.
    static func record(_ pid: Int32) {
        guard let file = ProcessInfo.processInfo.environment["SLUICE_E2E_PIDFILE"],
              let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let afterName = stat.range(of: ") ", options: .backwards)
        else { return }
        let fields = stat[afterName.upperBound...].split(separator: " ")
        guard fields.count > 19 else { return }
        let line = "\(pid) \(fields[19])\n"
        if let handle = FileHandle(forWritingAtPath: file) {
            handle.seekToEndOfFile()
            handle.write(Data(line.utf8))
            try? handle.close()
        } else {
            try? line.write(toFile: file, atomically: false, encoding: .utf8)
        }
    }

    var pid: Int32 { process.pid }
    var isRunning: Bool { process.isRunning }
    var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    /// Sends `signal` and waits up to `timeout` for exit; escalates to SIGKILL.
    func stop(signal: Int32 = SIGTERM, timeout: TimeInterval = 10) {
        guard process.isRunning else { return }
        kill(pid, signal)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { usleep(20_000) }
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
    }
}

struct ShellError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Waits longer on slow machines: `SLUICE_TEST_TIME_SCALE` (Scripts/vmtest sets it in an
/// emulated VM) multiplies every `eventually` timeout.
let testTimeScale: TimeInterval = ProcessInfo.processInfo.environment["SLUICE_TEST_TIME_SCALE"].flatMap(TimeInterval.init) ?? 1

/// Waits for `condition`, polling; throws with `message` after `timeout`.
func eventually(_ message: @autoclosure () -> String, timeout: TimeInterval = 15, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout * testTimeScale)
    while Date() < deadline {
        if (try? condition()) == true { return }
        usleep(50_000)
    }
    if try condition() { return }
    throw ShellError("timed out waiting for: \(message())")
}

private final class ReaderBox: @unchecked Sendable {
    private let ready = DispatchSemaphore(value: 0)
    private var data = Data()

    func set(_ value: Data) {
        data = value
        ready.signal()
    }

    func wait() -> Data {
        ready.wait()
        return data
    }
}
