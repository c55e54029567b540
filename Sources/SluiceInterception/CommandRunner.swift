import Foundation

/// Runs a system tool (the agent's rule installers; never the data path) and captures its
/// output. Commands aimed at a workload run inside its namespace through `nsenter`.
public struct CommandRunner: Sendable {
    public struct Result: Sendable {
        public var status: Int32
        public var output: String
        public var errorOutput: String
    }

    /// Runs `arguments` (first is the program, looked up on PATH) with `input` on stdin.
    public static func run(_ arguments: [String], input: String? = nil, inNamespace netnsPath: String? = nil) throws -> Result {
        var argv = arguments
        if let netnsPath { argv = ["nsenter", "--net=\(netnsPath)", "--"] + argv }
        guard let executable = locate(argv[0]) else {
            throw CommandError(command: argv.joined(separator: " "), message: "\(argv[0]) not found on PATH")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = Array(argv.dropFirst())
        let stdin = Pipe()
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        do {
            try process.run()
        } catch {
            throw CommandError(command: argv.joined(separator: " "), message: "cannot start: \(error)")
        }
        if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
        try? stdin.fileHandleForWriting.close()
        // Drain stderr concurrently so a chatty tool never blocks on a full pipe.
        let errorData = PendingData()
        Thread { errorData.fulfil(stderr.fileHandleForReading.readDataToEndOfFile()) }.start()
        let outputData = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus,
            output: String(decoding: outputData, as: UTF8.self),
            errorOutput: String(decoding: errorData.wait(), as: UTF8.self))
    }

    /// Runs and throws unless the exit status is 0.
    @discardableResult
    public static func check(_ arguments: [String], input: String? = nil, inNamespace netnsPath: String? = nil) throws -> String {
        let result = try run(arguments, input: input, inNamespace: netnsPath)
        guard result.status == 0 else {
            throw CommandError(
                command: arguments.joined(separator: " "),
                message: "exit \(result.status): \(result.errorOutput.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return result.output
    }

    public static func locate(_ program: String) -> String? {
        if program.contains("/") { return program }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin"
        for directory in (path + ":/usr/sbin:/sbin").split(separator: ":") {
            let candidate = "\(directory)/\(program)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}

/// A tool that failed, with what it printed.
struct CommandError: Error, CustomStringConvertible {
    var command: String
    var message: String
    var description: String { "\(command): \(message)" }
}

/// Bytes handed over from a reader thread.
private final class PendingData: @unchecked Sendable {
    private let ready = DispatchSemaphore(value: 0)
    private var data = Data()

    func fulfil(_ value: Data) {
        data = value
        ready.signal()
    }

    /// Blocks until `fulfil`; the semaphore orders the write before this read.
    func wait() -> Data {
        ready.wait()
        return data
    }
}
