import Foundation
import Testing
/// Locates the package's built executables and runs them, under `mpirun` or directly.
///
/// The executables are looked up in `$DDP_BIN_DIR` when set (scripts/test.sh points it at the
/// release build), else beside the running test bundle (the build folder `swift test` used).
enum Executables {
    static var binDirectory: URL {
        if let dir = ProcessInfo.processInfo.environment["DDP_BIN_DIR"], !dir.isEmpty {
            return URL(fileURLWithPath: dir)
        }
        return URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    }

    static func path(_ name: String) -> String { binDirectory.appendingPathComponent(name).path }

    /// The package's root folder (this file is Tests/SwiftDDPTestSupport/Executables.swift).
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// A file of the package, by its path from the root (`scripts/launch.sh`).
    static func packageFile(_ relativePath: String) -> String {
        packageRoot.appendingPathComponent(relativePath).path
    }

    /// The project's Python (scripts/setup.sh makes it: Debian's python3 with its packages,
    /// python3-torch among them when installed, plus pip's safetensors).
    static let python = packageFile(".venv/bin/python")

    /// Whether the project's Python imports `modules`, and if not, why (for a skip reason).
    static func pythonMissing(_ modules: String) -> String? {
        guard FileManager.default.isExecutableFile(atPath: python) else {
            return "\(python) does not exist: run scripts/setup.sh"
        }
        guard let outcome = try? run(python, ["-c", "import \(modules)"], timeout: 120), outcome.status == 0 else {
            return "\(python) cannot import \(modules): run scripts/setup.sh --torch"
        }
        return nil
    }

    struct Outcome {
        let status: Int32
        let output: String
        /// Killed by `run`'s timeout (a hang), rather than ending by itself.
        let timedOut: Bool
        /// Wall-clock seconds from start to exit.
        let seconds: Double
    }

    /// Runs `executable` with `arguments`, collecting stdout and stderr together.
    static func run(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:],
                    timeout: TimeInterval = 300) throws -> Outcome
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        environment["OPENBLAS_NUM_THREADS"] = environment["OPENBLAS_NUM_THREADS"] ?? "1"
        for (k, v) in extra { environment[k] = v }
        process.environment = environment
        let pipe = Pipe()
        let start = Date()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        let collected = OutputCollector()
        pipe.fileHandleForReading.readabilityHandler = { handle in collected.append(handle.availableData) }
        try runWithSignalsUnblocked(process)
        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        var tree: [pid_t: String] = [:]
        while process.isRunning {
            if Date() > deadline {
                timedOut = true
                tree = descendants(of: process.processIdentifier)
                process.terminate()
                break
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        if timedOut {
            // A launcher wedged in its own teardown ignores SIGTERM, and one that ends may leave
            // children holding the output pipe (a wedged mpirun under launch.sh): the test must
            // still end, so everything below the process goes too.
            let grace = Date().addingTimeInterval(10)
            while process.isRunning && Date() < grace { Thread.sleep(forTimeInterval: 0.05) }
            if process.isRunning {
                tree.merge(descendants(of: process.processIdentifier)) { first, _ in first }
                kill(process.processIdentifier, SIGKILL)
            }
            // only processes that are still the ones found (a pid may have been reused since)
            for (pid, started) in tree where startTime(of: pid) == started { kill(pid, SIGKILL) }
        }
        process.waitUntilExit()
        pipe.fileHandleForReading.readabilityHandler = nil
        collected.append(pipe.fileHandleForReading.readDataToEndOfFile())
        return Outcome(status: process.terminationStatus, output: collected.text, timedOut: timedOut,
                       seconds: Date().timeIntervalSince(start))
    }

    /// The fields of /proc/PID/stat after the command name (which may hold spaces and parentheses):
    /// state, parent pid, …; field 22 of the file (the start time) is the 20th of these.
    static func statFields(of pid: pid_t) -> [Substring]? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return nil }
        let stat = String(decoding: data, as: UTF8.self)
        guard let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ")
    }

    static func startTime(of pid: pid_t) -> String? {
        statFields(of: pid).flatMap { $0.count > 19 ? String($0[19]) : nil }
    }

    /// Every process below `root` (from /proc's parent links), with its start time.
    static func descendants(of root: pid_t) -> [pid_t: String] {
        var children: [pid_t: [(pid_t, String)]] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(entry), let fields = statFields(of: pid), fields.count > 19,
                  let parent = pid_t(fields[1])
            else { continue }
            children[parent, default: []].append((pid, String(fields[19])))
        }
        var found: [pid_t: String] = [:], queue = [root]
        while let pid = queue.popLast() {
            for (child, started) in children[pid] ?? [] where found.updateValue(started, forKey: child) == nil {
                queue.append(child)
            }
        }
        return found
    }

    /// Starts `process` from a thread whose signal mask is empty. Test code runs on dispatch
    /// worker threads, which block most signals, and a spawned child inherits the spawning
    /// thread's mask: with SIGTERM blocked, mpirun could not stop its ranks and `kill` would not
    /// stop a background helper (a link emulator once outlived its test that way).
    private static func runWithSignalsUnblocked(_ process: Process) throws {
        var empty = sigset_t(), previous = sigset_t()
        sigemptyset(&empty)
        pthread_sigmask(SIG_SETMASK, &empty, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        try process.run()
    }

    /// Runs a package executable under `mpirun -np N --oversubscribe`.
    /// - Parameter exporting: `NAME=value` settings for every rank (mpirun's `-x`).
    static func mpirun(np: Int, _ name: String, _ arguments: [String] = [], exporting: [String] = [],
                       timeout: TimeInterval = 300) throws -> Outcome
    {
        return try run(mpirunPath, ["-np", String(np), "--oversubscribe", "--bind-to", "none"] + localJobArguments
                           + ["-x", "OPENBLAS_NUM_THREADS"] + exporting.flatMap { ["-x", $0] } + [path(name)]
                           + arguments,
                       timeout: timeout)
    }

    static let mpirunPath = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    } ?? "/usr/bin/mpirun"

    /// Keeps a one-host job's own TCP traffic (mpirun ↔ ranks, and any TCP transport) on the
    /// loopback interface. The simulated-cluster tests create and delete a bridge and veth
    /// interfaces in this namespace while other suites run, and a job started at that moment
    /// could pick a vanishing interface for its wire-up. (A 4-rank run once hung before its
    /// first step while they did; 12 deliberate collisions afterwards did not reproduce it, so
    /// this is a precaution, not a proven fix.)
    ///
    /// Waiting ranks yield the core: the serialized suites run in parallel with each other, so
    /// several jobs of 2–4 ranks share the 2 cores, and ranks spinning in MPI waits starved the
    /// others' start-up — a rank's `MPI_Init` once failed with PMIx "Unreachable" (its launcher
    /// did not answer in time) and the job hung.
    static let localJobArguments = ["--mca", "oob_tcp_if_include", "lo", "--mca", "btl_tcp_if_include", "lo",
                                    "--mca", "mpi_yield_when_idle", "1"]
}

/// Exit statuses a job promises (Docs/reliability.md).
enum ExitStatus {
    /// An error: set-up failed on some rank, an agreed error, or a rank's error ended the job
    /// through `MPI_Abort(1)`.
    static let failure: Int32 = 1
    /// A usage error (ArgumentParser's validation).
    static let usage: Int32 = 64
    /// mpirun's status when a rank was killed by SIGKILL: 128 + 9.
    static let killed: Int32 = 137
    /// The launcher's own refusals (scripts/launch.sh).
    static let launcher: Int32 = 2
}

/// Checks that a job ended by itself (not by the test's timeout, which would also give a
/// non-zero status) with exactly `status`, and records how long it took.
func expectEnded(_ outcome: Executables.Outcome, status: Int32, _ what: String = "",
                 sourceLocation: SourceLocation = #_sourceLocation)
{
    #expect(!outcome.timedOut, "hung until the test's timeout \(what):\n\(outcome.output)",
            sourceLocation: sourceLocation)
    #expect(outcome.status == status, "exit status \(outcome.status), expected \(status) \(what):\n\(outcome.output)",
            sourceLocation: sourceLocation)
    print(String(format: "job ended with status %d in %.2f s %@", outcome.status, outcome.seconds, what))
}

final class OutputCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func append(_ chunk: Data) { lock.lock(); data.append(chunk); lock.unlock() }
    var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: data, as: UTF8.self) }
}
