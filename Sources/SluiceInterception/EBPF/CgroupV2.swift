import CBPF
import Foundation

/// The cgroup v2 hierarchy: where it is mounted, which cgroup a process is in, and the few
/// changes the eBPF mode makes (creating a workload's cgroup, moving processes).
public enum CgroupV2 {
    /// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified`
    /// on hybrid systems), read from /proc/mounts.
    public static func mountPoint() throws -> String {
        let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count >= 3, fields[2] == "cgroup2" { return unescape(String(fields[1])) }
        }
        throw CgroupError("no cgroup v2 hierarchy is mounted (no cgroup2 entry in /proc/mounts); the ebpf mode needs one")
    }

    /// Resolves an operator-given cgroup: an absolute directory on the cgroup v2 file system,
    /// or a path relative to its mount point. The directory must exist.
    public static func resolve(_ path: String) throws -> String {
        let root = try mountPoint()
        let candidate = path.hasPrefix(root + "/") || path == root ? path : root + "/" + path.drop { $0 == "/" }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CgroupError("cgroup \(path): \(candidate) is not an existing cgroup v2 directory")
        }
        guard isCgroupV2(candidate) else { throw CgroupError("cgroup \(path): \(candidate) is not on the cgroup v2 file system") }
        return standardized(candidate)
    }

    /// Whether `path` lies on a cgroup v2 file system.
    public static func isCgroupV2(_ path: String) -> Bool {
        sluice_is_cgroup2(path) == 1
    }

    /// The cgroup v2 directory process `pid` belongs to.
    public static func cgroup(ofProcess pid: Int32) throws -> String {
        let root = try mountPoint()
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8) else {
            throw CgroupError("cannot read /proc/\(pid)/cgroup (no such process?)")
        }
        for line in text.split(separator: "\n") where line.hasPrefix("0::") {
            let relative = line.dropFirst(3)
            return relative == "/" ? root : standardized(root + relative)
        }
        throw CgroupError("process \(pid) has no cgroup v2 entry in /proc/\(pid)/cgroup")
    }

    /// Whether `path` is `ancestor` or lies below it.
    public static func isSameOrBelow(_ path: String, _ ancestor: String) -> Bool {
        path == ancestor || path.hasPrefix(ancestor.hasSuffix("/") ? ancestor : ancestor + "/")
    }

    /// The PIDs in `cgroup` (its `cgroup.procs`).
    public static func processes(in cgroup: String) -> [Int32] {
        let text = (try? String(contentsOfFile: cgroup + "/cgroup.procs", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { Int32($0) }
    }

    /// Moves process `pid` (all its threads) into `cgroup`.
    public static func move(_ pid: Int32, to cgroup: String) throws {
        let file = cgroup + "/cgroup.procs"
        let fd = open(file, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CgroupError("cannot open \(file): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let text = Array("\(pid)\n".utf8)
        guard write(fd, text, text.count) == text.count else {
            let code = errno
            // A process that exited meanwhile is not an error.
            if code == ESRCH { return }
            throw CgroupError("cannot move process \(pid) into \(cgroup): \(String(cString: strerror(code)))")
        }
    }

    /// Creates `path` (and missing parents) on the cgroup v2 file system.
    public static func create(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw CgroupError("cannot create cgroup \(path): \(error.localizedDescription)")
        }
    }

    /// Removes an empty cgroup directory (cgroup directories are removed with rmdir, never
    /// by deleting their control files).
    public static func remove(_ path: String) throws {
        guard rmdir(path) == 0 || errno == ENOENT else {
            throw CgroupError("cannot remove cgroup \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// PIDs of the processes whose network namespace is the one at `netnsPath`.
    public static func processes(inNetworkNamespace netnsPath: String) -> [Int32] {
        var target = stat()
        guard stat(netnsPath, &target) == 0 else { return [] }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            var info = stat()
            return stat("/proc/\(pid)/ns/net", &info) == 0 && info.st_ino == target.st_ino && info.st_dev == target.st_dev
        }.sorted()
    }

    private static func standardized(_ path: String) -> String {
        var result = (path as NSString).standardizingPath
        while result.count > 1, result.hasSuffix("/") { result.removeLast() }
        return result
    }

    /// /proc/mounts escapes spaces and similar as octal (`\040`).
    private static func unescape(_ field: String) -> String {
        var result = ""
        let characters = Array(field)
        var index = 0
        while index < characters.count {
            if characters[index] == "\\", index + 3 < characters.count,
               let code = UInt8(String(characters[(index + 1)...(index + 3)]), radix: 8) {
                result.append(Character(UnicodeScalar(code)))
                index += 4
            } else {
                result.append(characters[index])
                index += 1
            }
        }
        return result
    }
}

/// A cgroup operation that failed, with what was wrong.
public struct CgroupError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
