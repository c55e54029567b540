#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import NIOConcurrencyHelpers
import SluiceModel

/// An access log file shared by every logger and event loop that names the same path.
///
/// Event loops only append to an in-memory buffer under a lock; a background queue writes it out every
/// `flushInterval` (Envoy's `file_flush_interval_msec`, 1 s) or as soon as it holds `minFlushSize` bytes
/// (Envoy's 64 KiB). A failed write closes the file; the next flush reopens it and retries the data
/// (up to `maxBuffered` bytes are kept; older lines beyond that are dropped and counted).
public final class AccessLogFile: Sendable {
    public let path: String
    public let flushInterval: Duration
    public let minFlushSize: Int
    public let maxBuffered: Int
    private let queue: DispatchQueue
    private struct Pending {
        var bytes: [UInt8] = []
        var flushQueued = false
        var closed = false
        var dropped: UInt64 = 0
    }
    private let pending = NIOLockedValueBox(Pending())
    /// Touched only on `queue`.
    private let descriptor = NIOLockedValueBox<Int32>(-1)

    public init(path: String, flushInterval: Duration = .seconds(1), minFlushSize: Int = 64 * 1024,
                maxBuffered: Int = 16 * 1024 * 1024) {
        self.path = path
        self.flushInterval = flushInterval
        self.minFlushSize = minFlushSize
        self.maxBuffered = maxBuffered
        queue = DispatchQueue(label: "sluice.accesslog.\(path)")
        scheduleTick()
    }

    /// Queues one line (bytes as given; the formatter supplies the newline). Never blocks on the disk.
    public func write(_ line: String) {
        let flushNow = pending.withLockedValue { pending -> Bool in
            guard !pending.closed else { return false }
            if pending.bytes.count + line.utf8.count > maxBuffered {
                pending.dropped += 1
                return false
            }
            pending.bytes.append(contentsOf: line.utf8)
            guard pending.bytes.count >= minFlushSize, !pending.flushQueued else { return false }
            pending.flushQueued = true
            return true
        }
        if flushNow { queue.async { self.flushOnQueue() } }
    }

    /// Lines dropped because the file could not be written for a long time.
    public var droppedLines: UInt64 { pending.withLockedValue { $0.dropped } }

    /// Writes what is buffered and waits until it is written (tests, shutdown).
    public func flush() {
        queue.sync { flushOnQueue() }
    }

    /// Closes and reopens the file on the next write (Envoy's reopen on `SIGUSR1`, for log rotation).
    public func reopen() {
        queue.async { self.closeDescriptor() }
    }

    /// Flushes and stops; later writes are ignored.
    public func close() {
        flush()
        pending.withLockedValue { $0.closed = true }
        queue.sync { closeDescriptor() }
    }

    private func scheduleTick() {
        let nanos = flushInterval.components.seconds * 1_000_000_000 + flushInterval.components.attoseconds / 1_000_000_000
        queue.asyncAfter(deadline: .now() + .nanoseconds(Int(max(nanos, 1_000_000)))) { [weak self] in
            guard let self, !self.pending.withLockedValue({ $0.closed }) else { return }
            self.flushOnQueue()
            self.scheduleTick()
        }
    }

    private func flushOnQueue() {
        let bytes = pending.withLockedValue { pending -> [UInt8] in
            pending.flushQueued = false
            defer { pending.bytes = [] }
            return pending.bytes
        }
        guard !bytes.isEmpty else { return }
        let written = writeAll(bytes)
        if written < bytes.count {
            // Put the unwritten tail back in front of anything newer, to retry after reopening.
            pending.withLockedValue { pending in
                let rest = Array(bytes[written...])
                if rest.count + pending.bytes.count <= maxBuffered {
                    pending.bytes = rest + pending.bytes
                } else {
                    pending.dropped += 1
                }
            }
        }
    }

    /// Writes as much as it can; on an error closes the file so the next flush reopens it.
    private func writeAll(_ bytes: [UInt8]) -> Int {
        var fd = descriptor.withLockedValue { $0 }
        if fd < 0 {
            fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else { return 0 }
            descriptor.withLockedValue { $0 = fd }
        }
        var offset = 0
        while offset < bytes.count {
            let result = bytes.withUnsafeBytes { buffer in
                Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            }
            if result < 0 {
                if errno == EINTR { continue }
                closeDescriptor()
                return offset
            }
            offset += result
        }
        return offset
    }

    private func closeDescriptor() {
        descriptor.withLockedValue { fd in
            if fd >= 0 { Glibc.close(fd) }
            fd = -1
        }
    }
}

/// The open access log files by path, so loggers naming one path share one buffer and descriptor
/// (Envoy's access log manager).
public final class AccessLogFiles: Sendable {
    private let files = NIOLockedValueBox<[String: AccessLogFile]>([:])

    public init() {}

    /// The process-wide set.
    public static let shared = AccessLogFiles()

    public func file(path: String) -> AccessLogFile {
        files.withLockedValue { files in
            if let existing = files[path] { return existing }
            let made = AccessLogFile(path: path)
            files[path] = made
            return made
        }
    }

    /// Reopens every file (log rotation).
    public func reopenAll() {
        for file in files.withLockedValue({ Array($0.values) }) { file.reopen() }
    }

    /// Flushes every file.
    public func flushAll() {
        for file in files.withLockedValue({ Array($0.values) }) { file.flush() }
    }
}

/// One configured access log (`envoy.access_loggers.file`): a format and the file it writes to.
public struct AccessLogger: Sendable {
    public let formatter: AccessLogFormatter
    public let file: AccessLogFile

    /// Compiles the format (an unknown operator fails here, at load time) and opens the shared file.
    public init(_ config: AccessLogConfig, files: AccessLogFiles = .shared) throws(AccessLogFormatError) {
        formatter = try AccessLogFormatter(config.format)
        file = files.file(path: config.path)
    }

    /// Logs one finished stream; call once per stream when it ends (after the last byte or the reset).
    public func log(_ entry: AccessLogEntry) {
        file.write(formatter.line(entry))
    }
}
