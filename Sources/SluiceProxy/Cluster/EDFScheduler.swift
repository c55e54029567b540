/// Earliest-deadline-first scheduling over weighted entries (identified by index), as Envoy's
/// weighted round robin, weighted least-request and locality picks use: every entry is due
/// `1 / weight` after it was last picked, the earliest due wins and ties go to the entry queued
/// first. Picks are deterministic and interleave entries smoothly in proportion to weight.
struct EDFScheduler {
    private struct Entry {
        var deadline: Double
        var order: UInt64
        var index: Int

        func isBefore(_ other: Entry) -> Bool {
            deadline < other.deadline || (deadline == other.deadline && order < other.order)
        }
    }

    /// A binary min-heap ordered by `Entry.isBefore`.
    private var heap: [Entry] = []
    private var now = 0.0
    private var nextOrder: UInt64 = 0

    /// Schedules entries `0..<weights.count`; entries whose weight is not positive are never picked.
    init(weights: [Double]) {
        for (index, weight) in weights.enumerated() where weight > 0 {
            push(Entry(deadline: 1 / weight, order: nextOrder, index: index))
            nextOrder += 1
        }
    }

    var isEmpty: Bool { heap.isEmpty }

    /// The entry due first; it is queued again with the weight `weight(index)` has now (least
    /// request re-weighs a host by its active requests each time it is picked).
    mutating func pick(weight: (Int) -> Double) -> Int? {
        guard !heap.isEmpty else { return nil }
        let first = heap[0]
        now = first.deadline
        let next = weight(first.index)
        // A weight that fell to zero (or below) keeps the entry last in line rather than dropping it.
        heap[0] = Entry(deadline: now + (next > 0 ? 1 / next : .greatestFiniteMagnitude), order: nextOrder, index: first.index)
        nextOrder += 1
        siftDown(0)
        return first.index
    }

    private mutating func push(_ entry: Entry) {
        heap.append(entry)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].isBefore(heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var first = parent
            if left < heap.count, heap[left].isBefore(heap[first]) { first = left }
            if right < heap.count, heap[right].isBefore(heap[first]) { first = right }
            if first == parent { return }
            heap.swapAt(parent, first)
            parent = first
        }
    }
}
