import CSluiceLinux
import Foundation

/// A child process started with `posix_spawn`. Foundation's `Process.run` has crashed in these
/// tests (inside its memcpy, while other threads were reaping and starting processes), so the
/// harness spawns and reaps its children itself.
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    private let lock = NSLock()
    private var exitStatus: Int32?

    /// Runs `arguments` through `/usr/bin/env` (PATH lookup) with the given descriptors as
    /// stdin, stdout and stderr (nil stdin: /dev/null). Every other descriptor stays behind
    /// (they are close-on-exec, or closed by the file actions).
    init(_ arguments: [String], stdin: CInt? = nil, stdout: CInt, stderr: CInt) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let stdin {
            posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        sluice_spawn_close_from(&actions, 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Children start with default signal handling and nothing blocked, whatever this
        // process did with its own signals.
        var defaults = sigset_t()
        sigfillset(&defaults)
        sigdelset(&defaults, SIGKILL)
        sigdelset(&defaults, SIGSTOP)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = (["/usr/bin/env"] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, "/usr/bin/env", &actions, &attributes, argv, environ)
        guard rc == 0 else { throw ShellError("cannot start \(arguments.joined(separator: " ")): \(String(cString: strerror(rc)))") }
        pid = child
    }

    /// Whether the child still runs (reaps it once it has exited).
    var isRunning: Bool { reap(blocking: false) == nil }

    /// Waits for the child to exit.
    func waitUntilExit() { _ = reap(blocking: true) }

    /// The exit code, or the signal number that ended the child (as Foundation reports it).
    var terminationStatus: Int32 { reap(blocking: true) ?? -1 }

    private func reap(blocking: Bool) -> Int32? {
        lock.lock()
        defer { lock.unlock() }
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        var rc: pid_t
        repeat { rc = waitpid(pid, &status, blocking ? 0 : WNOHANG) } while rc < 0 && errno == EINTR
        guard rc == pid else { return nil }
        // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import as functions.
        let signal = status & 0x7f
        exitStatus = signal == 0 ? (status >> 8) & 0xff : signal
        return exitStatus
    }
}

/// A pipe whose ends are close-on-exec, so only the child it is handed to inherits it.
func closeOnExecPipe() throws -> (read: CInt, write: CInt) {
    var fds: [CInt] = [0, 0]
    let rc = sluice_pipe_cloexec(&fds)
    guard rc == 0 else { throw ShellError("pipe2: \(String(cString: strerror(-rc)))") }
    return (fds[0], fds[1])
}
