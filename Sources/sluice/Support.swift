import Dispatch
import Foundation
import Logging

enum Support {
    /// Configures swift-log once, to stderr, at `level`.
    static func bootstrapLogging(_ level: String) throws {
        guard let parsed = Logger.Level(rawValue: level) else {
            throw ValidationErrorMessage("unknown --log-level \(level)")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = parsed
            return handler
        }
    }

    /// Suspends until SIGINT or SIGTERM arrives or `trigger` is called (e.g. `/quitquitquit`).
    final class ShutdownSignal: @unchecked Sendable {
        private let stream: AsyncStream<String>
        private let continuation: AsyncStream<String>.Continuation
        private var sources: [any DispatchSourceSignal] = []

        init() {
            (stream, continuation) = AsyncStream.makeStream(of: String.self)
            for signalNumber in [SIGINT, SIGTERM] {
                signal(signalNumber, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
                let name = signalNumber == SIGINT ? "SIGINT" : "SIGTERM"
                source.setEventHandler { [continuation] in continuation.yield(name) }
                source.resume()
                sources.append(source)
            }
        }

        func trigger(_ reason: String) {
            continuation.yield(reason)
        }

        /// The reason the process should stop.
        func wait() async -> String {
            for await reason in stream { return reason }
            return "stream ended"
        }
    }

    /// Runs async work to completion from a thread that is not in Swift concurrency.
    static func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let box = ResultBox<T>()
        Task {
            do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
            box.done.signal()
        }
        box.done.wait()
        return try box.result!.get()
    }

    private final class ResultBox<T>: @unchecked Sendable {
        let done = DispatchSemaphore(value: 0)
        var result: Result<T, any Error>?
    }
}

/// A usage error with a message for the operator.
struct ValidationErrorMessage: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}
