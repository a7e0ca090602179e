import Foundation

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

    struct Outcome {
        let status: Int32
        let output: String
        let timedOut: Bool
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
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        let collected = OutputCollector()
        pipe.fileHandleForReading.readabilityHandler = { handle in collected.append(handle.availableData) }
        try runWithSignalsUnblocked(process)
        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        while process.isRunning {
            if Date() > deadline {
                timedOut = true
                process.terminate()
                break
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        if timedOut {
            // A launcher wedged in its own teardown ignores SIGTERM; the test must still end.
            let grace = Date().addingTimeInterval(10)
            while process.isRunning && Date() < grace { Thread.sleep(forTimeInterval: 0.05) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        pipe.fileHandleForReading.readabilityHandler = nil
        collected.append(pipe.fileHandleForReading.readDataToEndOfFile())
        return Outcome(status: process.terminationStatus, output: collected.text, timedOut: timedOut)
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
                           + ["-x", "OPENBLAS_NUM_THREADS"] + exporting.flatMap { ["-x", $0] } + [path(name)] + arguments,
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

final class OutputCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func append(_ chunk: Data) { lock.lock(); data.append(chunk); lock.unlock() }
    var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: data, as: UTF8.self) }
}
