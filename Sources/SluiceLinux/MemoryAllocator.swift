import CSluiceLinux

/// Settings of the C allocator the process runs on.
public enum MemoryAllocator {
    /// Every request allocates and frees on its event loop's malloc arena; glibc's defaults give
    /// freed memory back at the top of the heap and grow the heap again moments later (an
    /// `mprotect` and fresh page faults each time). A proxy keeps it, as Envoy's tcmalloc does.
    public static func keepFreedMemory(upTo trimThreshold: Int = 128 << 20, growingBy topPad: Int = 8 << 20) {
        sluice_keep_freed_memory(trimThreshold, topPad)
    }
}
