import Foundation
import NIOCore

/// The most recent buffers written to one side of a relay, kept only until NIO has written
/// them to the socket. NIO does not hand back what it has not written yet, but it reports how
/// many bytes that is (`bufferedWritableBytes`), which are always the last ones given to it:
/// keeping buffers that cover that count lets a migration carry those bytes to the new process.
struct OutboundTail {
    private var buffers = CircularBuffer<ByteBuffer>()
    private var total = 0

    var isEmpty: Bool { buffers.isEmpty }

    mutating func append(_ buffer: ByteBuffer) {
        buffers.append(buffer)
        total += buffer.readableBytes
    }

    /// Drops what is no longer needed to cover the last `unwritten` bytes.
    mutating func trim(toCover unwritten: Int) {
        if unwritten <= 0 {
            buffers.removeAll(keepingCapacity: true)
            total = 0
            return
        }
        while let first = buffers.first, total - first.readableBytes >= unwritten {
            total -= first.readableBytes
            buffers.removeFirst()
        }
    }

    /// The last `count` bytes written (nil when fewer are kept: they cannot be recovered).
    func last(_ count: Int) -> Data? {
        guard count > 0 else { return Data() }
        guard count <= total else { return nil }
        var skip = total - count
        var data = Data(capacity: count)
        for buffer in buffers {
            let length = buffer.readableBytes
            if skip >= length {
                skip -= length
                continue
            }
            data.append(contentsOf: buffer.readableBytesView.dropFirst(skip))
            skip = 0
        }
        return data
    }
}
