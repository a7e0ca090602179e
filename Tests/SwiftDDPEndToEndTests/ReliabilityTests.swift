import Foundation
import SwiftDDPSafeTensors
import Testing
@testable import SwiftDDPTestSupport
/// Checkpoints, failures and bad input, on real mpirun jobs.
@Suite("Reliability under mpirun", .serialized)
struct ReliabilityTests {
    static let common = ["train", "--synthetic", "--synthetic-train", "2048", "--depth", "2", "--width", "32",
                         "--dropout", "0.1", "--batch-size", "16", "--epochs", "2", "--seed", "4",
                         "--log-every", "1000", "--no-eval"]

    func ddp(np: Int = 2, _ arguments: [String], timeout: TimeInterval = 120) throws -> Executables.Outcome {
        try Executables.mpirun(np: np, "ddp", arguments, timeout: timeout)
    }

    func errorLines(_ outcome: Executables.Outcome, containing text: String) -> Int {
        outcome.output.split(separator: "\n").filter { $0.contains(text) }.count
    }

    @Test("a run resumed from a checkpoint ends bit-identical to an uninterrupted run, across an epoch boundary")
    func resumeBitIdentical() throws {
        let dir = TemporaryDirectory()
        let full = try ddp(Self.common + ["--save", dir.path + "/full.safetensors"])
        expectEnded(full, status: 0)
        // interrupted by a kill -9 of rank 1 at step 63 of 128, in epoch 1 (epoch 2 starts at step 65)
        let killed = try ddp(Self.common + ["--checkpoint-dir", dir.path + "/ck", "--checkpoint-every", "10",
                                            "--debug-fail", "kill", "--debug-fail-rank", "1",
                                            "--debug-fail-step", "63"])
        expectEnded(killed, status: ExitStatus.killed)
        let kept = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/ck").sorted()
        #expect(kept == ["checkpoint-00000050.safetensors", "checkpoint-00000060.safetensors"],
                "the two newest are kept")
        // the resumed run finishes epoch 1 from its middle, then reshuffles for epoch 2
        let resumed = try ddp(Self.common + ["--checkpoint-dir", dir.path + "/ck", "--checkpoint-every", "10",
                                             "--resume", "--save", dir.path + "/resumed.safetensors"])
        expectEnded(resumed, status: 0)
        #expect(resumed.output.contains("resuming from step 60 (epoch 1)"), "\(resumed.output)")
        let a = try SafeTensors.read(dir.path + "/full.safetensors").tensors
        let b = try SafeTensors.read(dir.path + "/resumed.safetensors").tensors
        #expect(a == b, "parameters, buffers and counters bit-identical")
    }

    /// 256 samples, global batch 16: 16 steps an epoch, 32 in all.
    static let elastic = ["train", "--synthetic", "--synthetic-train", "256", "--depth", "2", "--width", "32",
                          "--global-batch-size", "16", "--epochs", "2", "--seed", "4", "--log-every", "1000",
                          "--no-eval"]

    static func state(_ path: String) throws -> [String: TensorData] { try SafeTensors.read(path).tensors }

    /// With SyncBN over all ranks and a fixed global batch, the run is the same computation on
    /// any number of ranks: interrupted on one count and resumed on another, it ends where the
    /// uninterrupted run does.
    @Test("--resume on another number of ranks continues the same run (SyncBN, fixed global batch)",
          arguments: [(4, 2, [String]()), (2, 4, []), (4, 1, []), (2, 1, ["--dropout", "0.2"])])
    func elasticResume(from: Int, to: Int, extra: [String]) throws {
        let dir = TemporaryDirectory()
        // dropout masks are keyed by sample, so they do not depend on the rank count either
        let run = Self.elastic + extra
        let full = try ddp(np: to, run + ["--save", dir.path + "/full.safetensors"], timeout: 240)
        expectEnded(full, status: 0)
        // stopped at step 23 (epoch 2 starts at step 17); the newest checkpoint is step 20's
        let first = try ddp(np: from, run + ["--checkpoint-dir", dir.path + "/ck", "--checkpoint-every", "10",
                                             "--debug-fail", "throw", "--debug-fail-step", "23"],
                            timeout: 240)
        expectEnded(first, status: ExitStatus.failure)
        let resumed = try ddp(np: to, run + ["--checkpoint-dir", dir.path + "/ck", "--checkpoint-every", "10",
                                             "--resume", "--save", dir.path + "/resumed.safetensors"],
                              timeout: 240)
        expectEnded(resumed, status: 0)
        #expect(resumed.output.contains("resuming from step 20 (epoch 2)"), "\(resumed.output)")
        #expect(resumed.output.contains("the checkpoint was written by \(from) ranks: the global batch stays 16, "
                                        + "now \(16 / to) per rank on \(to)"), "\(resumed.output)")
        let a = try Self.state(dir.path + "/full.safetensors"), b = try Self.state(dir.path + "/resumed.safetensors")
        #expect(Set(a.keys) == Set(b.keys))
        for key in a.keys.sorted() {
            if a[key]!.dtype == .f32 {
                let error = relativeError(try a[key]!.floats().map(Double.init), try b[key]!.floats().map(Double.init))
                #expect(error < 1e-5, "\(key): \(error)")
            } else {
                #expect(a[key] == b[key], "\(key)")
            }
        }
    }

    @Test("resuming on another number of ranks: local BN needs --allow-bn-regroup, and the global batch must stay")
    func elasticResumeRefusals() throws {
        let dir = TemporaryDirectory()
        let bn = Self.elastic + ["--norm", "bn", "--checkpoint-dir", dir.path + "/bn", "--checkpoint-every", "10"]
        expectEnded(try ddp(np: 4, bn + ["--max-steps", "10"], timeout: 240), status: 0)
        let refused = try ddp(np: 2, bn + ["--resume"], timeout: 240)
        expectEnded(refused, status: ExitStatus.failure)
        #expect(errorLines(refused, containing: "--allow-bn-regroup") == 1, "\(refused.output)")
        let allowed = try ddp(np: 2, bn + ["--resume", "--allow-bn-regroup"], timeout: 240)
        expectEnded(allowed, status: 0)
        #expect(allowed.output.contains("local BatchNorm now normalizes over 8 samples per rank instead of 4"),
                "\(allowed.output)")

        let sync = Self.elastic + ["--checkpoint-dir", dir.path + "/sync", "--checkpoint-every", "10"]
        expectEnded(try ddp(np: 4, sync + ["--max-steps", "10"], timeout: 240), status: 0)
        var other = sync
        other[other.firstIndex(of: "--global-batch-size")! + 1] = "8"
        let smaller = try ddp(np: 2, other + ["--resume"], timeout: 240)
        expectEnded(smaller, status: ExitStatus.failure)
        #expect(errorLines(smaller, containing: "global batch of 16") == 1
                && smaller.output.contains("--global-batch-size 16 keeps it"), "\(smaller.output)")
    }

    /// scripts/launch.sh --max-restarts: the relaunch resumes from the newest checkpoint.
    func launch(_ arguments: [String], path: String? = nil, timeout: TimeInterval = 240) throws
        -> Executables.Outcome
    {
        var environment = ["DDP_BIN_DIR": Executables.binDirectory.path]
        if let path { environment["PATH"] = path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "") }
        return try Executables.run("/bin/bash", [Executables.packageFile("scripts/launch.sh")] + arguments,
                                   environment: environment, timeout: timeout)
    }

    /// Open MPI 4.1's mpirun once deadlocked in PMIx_server_finalize after a killed rank: its ranks
    /// gone, itself alive and deaf to SIGTERM. A stand-in mpirun does the same on its first run; the
    /// launcher stops it (SIGKILL) 15 s after its last child ended, then restarts the job
    /// (--max-restarts) or ends with the killed mpirun's status, 137.
    @Test("launch.sh: an mpirun that hangs after its ranks ended is stopped; the job restarted or ended",
          arguments: [true, false])
    func wedgedTeardown(restart: Bool) throws {
        let dir = TemporaryDirectory()
        let fake = dir.path + "/mpirun"
        try """
            #!/usr/bin/python3
            import os, signal, sys, time
            marker = sys.argv[0] + ".ran"
            if os.path.exists(marker):
                sys.exit(0)
            open(marker, "w").close()
            if os.fork() == 0:       # a rank that runs, then ends (a zombie: the wedged mpirun reaps nothing)
                time.sleep(10)
                os._exit(0)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            time.sleep(600)
            """.write(toFile: fake, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: fake)
        let restarts = restart ? ["--max-restarts", "1"] : []
        let outcome = try launch(restarts + ["-np", "2", "--", "train", "--checkpoint-dir", dir.path,
                                             "--checkpoint-every", "10"], path: dir.path, timeout: 120)
        let said = "launch: mpirun hung in its teardown after its ranks ended; "
            + (restart ? "restart 1 of 1" : "stopped it")
        expectEnded(outcome, status: restart ? 0 : ExitStatus.killed)
        #expect(outcome.output.contains(said), "\(outcome.output)")
        // 10 s of the rank, then 15 s without children: not 15 s from the start, nor before the rank ended
        #expect(outcome.seconds >= 24, "stopped after \(outcome.seconds) s")
    }

    @Test("launch.sh --max-restarts: a killed rank's job is relaunched, ending bit for bit as the uninterrupted run")
    func restartAfterKill() throws {
        let dir = TemporaryDirectory()
        let mpi = ["-np", "2"] + Executables.localJobArguments + ["--"]
        expectEnded(try launch(mpi + Self.elastic + ["--save", dir.path + "/full.safetensors"]), status: 0)
        let job = Self.elastic + ["--checkpoint-dir", dir.path + "/ck", "--checkpoint-every", "10",
                                  "--debug-fail", "kill", "--debug-fail-rank", "1", "--debug-fail-step", "23"]
        // the fault fires once (the marker), as a real failure would
        let restarted = try launch(["--max-restarts", "2"] + mpi + job
                                   + ["--debug-fail-marker", dir.path + "/fired",
                                      "--save", dir.path + "/run.safetensors"])
        expectEnded(restarted, status: 0)
        #expect(restarted.output.contains("launch: a rank was killed (signal 9); restart 1 of 2, resuming from the "
                                          + "newest checkpoint") && restarted.output.contains("resuming from step 20"),
                "\(restarted.output)")
        #expect(try Self.state(dir.path + "/full.safetensors") == Self.state(dir.path + "/run.safetensors"))
        // a fault on every run: the restarts run out, and the job's own status comes back
        try FileManager.default.removeItem(atPath: dir.path + "/ck")
        let failing = try launch(["--max-restarts", "1"] + mpi + job)
        expectEnded(failing, status: ExitStatus.killed)
        #expect(failing.output.contains("restart 1 of 1")
                && failing.output.contains("no restart left (--max-restarts 1)"), "\(failing.output)")
    }

    @Test("launch.sh --min-np: a hostfile host that does not answer is left out and the job runs on fewer ranks")
    func minimumRanks() throws {
        let dir = TemporaryDirectory()
        // 192.0.2.1 is TEST-NET-1: never reachable
        let hosts = dir.write("hosts", Array("localhost slots=2\n192.0.2.1 slots=2\n".utf8))
        let job = Self.elastic + ["--checkpoint-dir", dir.path + "/ck", "--checkpoint-every", "10"]
        let fewer = try launch(["-np", "4", "--hostfile", hosts, "--max-restarts", "1", "--min-np", "2"]
                               + Executables.localJobArguments + ["--"] + job)
        expectEnded(fewer, status: 0)
        #expect(fewer.output.contains("host '192.0.2.1' does not answer") && fewer.output.contains("leaving it out")
                && fewer.output.contains("running on 2 ranks (of 4)") && fewer.output.contains("world size 2"),
                "\(fewer.output)")
        let tooFew = try launch(["-np", "4", "--hostfile", hosts, "--max-restarts", "1", "--min-np", "3", "--"] + job)
        expectEnded(tooFew, status: ExitStatus.failure)
        #expect(errorLines(tooFew, containing: "fewer than --min-np 3 ranks would run") == 1, "\(tooFew.output)")
    }

    /// Ctrl-C reaches the launcher while it probes the hosts (here a launch agent that takes 10 s):
    /// it must not go on to start the job. (`set -m`: a background job of a script without job
    /// control would ignore SIGINT, as the launcher in a terminal does not.)
    @Test("launch.sh --min-np: interrupted while it probes the hosts, it starts nothing")
    func interruptedWhileProbing() throws {
        let dir = TemporaryDirectory()
        let agent = dir.path + "/slow-agent"
        try "#!/bin/sh\nsleep 10\n".write(toFile: agent, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: agent)
        let hosts = dir.write("hosts", Array("localhost slots=2\nfarhost slots=2\n".utf8))
        let launcher = [Executables.packageFile("scripts/launch.sh"), "-np", "4", "--hostfile", hosts, "--mca",
                        "plm_rsh_agent", agent, "--max-restarts", "1", "--min-np", "2", "--", "train", "--synthetic",
                        "--checkpoint-dir", dir.path + "/ck", "--checkpoint-every", "10"]
        let script = "set -m; \"$@\" & p=$!; sleep 1; kill -INT $p; wait $p"
        let outcome = try Executables.run("/bin/bash", ["-c", script, "wrapper"] + launcher,
                                          environment: ["DDP_BIN_DIR": Executables.binDirectory.path], timeout: 60)
        expectEnded(outcome, status: 130)
        #expect(outcome.output.contains("launch: interrupted before mpirun started")
                && !outcome.output.contains("+ mpirun"), "\(outcome.output)")
    }

    /// SIGKILL cannot be trapped: a launcher killed that way (an out-of-memory kill, a scheduler that kills
    /// one PID) must still not leave its mpirun and ranks running. The kernel sends mpirun SIGTERM when
    /// its parent dies (PR_SET_PDEATHSIG, set through setpriv), and mpirun stops the ranks.
    @Test("launch.sh killed with SIGKILL: its mpirun and ranks end too")
    func launcherKilled() throws {
        let dir = TemporaryDirectory()
        let launcher = [Executables.packageFile("scripts/launch.sh"), "-np", "2", "--", "train", "--synthetic",
                        "--epochs", "1000", "--checkpoint-dir", dir.path + "/ck"]
        let ranks = "/ddp train .*" + dir.path  // the ranks' command lines (mpirun's shows them too)
        let script = """
            "$@" & p=$!
            for i in $(seq 60); do pgrep -f "$RANKS" > /dev/null && break; sleep 0.5; done
            pgrep -f "$RANKS" > /dev/null || { echo "the ranks never started"; kill -TERM $p; wait $p; exit 2; }
            sleep 1; kill -KILL $p
            for i in $(seq 20); do pgrep -f "$RANKS" > /dev/null || { echo "ranks ended"; exit 0; }; sleep 0.5; done
            echo "ranks still running 10 s after the launcher was killed"; pkill -KILL -f "$RANKS"; exit 1
            """
        let outcome = try Executables.run("/bin/bash", ["-c", script, "wrapper"] + launcher,
                                          environment: ["DDP_BIN_DIR": Executables.binDirectory.path,
                                                        "RANKS": ranks], timeout: 90)
        expectEnded(outcome, status: 0)
        #expect(outcome.output.contains("ranks ended"), "\(outcome.output)")
    }

    @Test("a corrupt newest checkpoint is reported and the previous one is used")
    func corruptCheckpoint() throws {
        let dir = TemporaryDirectory()
        let first = try ddp(Self.common + ["--checkpoint-dir", dir.path, "--checkpoint-every", "20",
                                           "--max-steps", "40"])
        expectEnded(first, status: 0)
        let newest = dir.path + "/checkpoint-00000040.safetensors"
        var bytes = [UInt8](try #require(FileManager.default.contents(atPath: newest)))
        bytes[bytes.count - 100] ^= 0xFF  // flip bits in the data: only the checksum can tell
        replaceFile(newest, with: Data(bytes))
        let resumed = try ddp(Self.common + ["--checkpoint-dir", dir.path, "--checkpoint-every", "20", "--resume",
                                             "--max-steps", "50"])
        expectEnded(resumed, status: 0)
        #expect(resumed.output.contains("skipping checkpoint") && resumed.output.contains("checksum mismatch"))
        #expect(resumed.output.contains("resuming from step 20"))
        // a truncated checkpoint too
        let truncated = dir.path + "/checkpoint-00000040.safetensors"
        replaceFile(truncated, with: Data(bytes.prefix(bytes.count / 2)))
        let again = try ddp(Self.common + ["--checkpoint-dir", dir.path, "--resume", "--max-steps", "50"])
        expectEnded(again, status: 0)
        #expect(again.output.contains("skipping checkpoint"), "\(again.output)")
        #expect(again.output.contains("resuming from step 20"), "\(again.output)")
    }

    @Test("--resume refuses checkpoints of another job (rank count, options) instead of starting over, and leaves them")
    func resumeOtherJob() throws {
        let dir = TemporaryDirectory()
        let first = try ddp(Self.common + ["--checkpoint-dir", dir.path, "--checkpoint-every", "10",
                                           "--max-steps", "20"])
        expectEnded(first, status: 0)
        let before = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        for (np, extra, reason) in [(1, [String](), "was written by 2 ranks with a global batch of 32; this job's is "
                                        + "1 × 16 = 16 (--global-batch-size 32 keeps it)"),
                                    (2, ["--lr", "0.2"],
                                     "was written with a different configuration: --lr 0.2 (checkpoint: 0.05)"),
                                    (2, ["--width", "16", "--seed", "3"],
                                     "different configuration: --width 16 (checkpoint: 32); "
                                        + "--seed 3 (checkpoint: 4)"),
                                    (2, ["--drop-last", "--bucket-mb", "2"],
                                     "different configuration: --drop-last given (checkpoint: not given); "
                                        + "--bucket-mb 2.0 (checkpoint: 1.0)")] {
            let outcome = try ddp(np: np, Self.common + extra + ["--checkpoint-dir", dir.path,
                                                                 "--checkpoint-every", "10",
                                                                 "--resume", "--max-steps", "30"])
            expectEnded(outcome, status: ExitStatus.failure)
            #expect(errorLines(outcome, containing: "no checkpoint in \(dir.path) belongs to this job") == 1,
                    "\(outcome.output)")
            #expect(outcome.output.contains(reason), "\(outcome.output)")
            #expect(!outcome.output.contains("MPI_ABORT"), "an agreed error, not an abort: \(outcome.output)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == before,
                "the checkpoints are left as they were")
    }

    @Test("a new job refuses a --checkpoint-dir holding another job's checkpoints, deletes them only when told")
    func checkpointDirOfAnotherJob() throws {
        let dir = TemporaryDirectory()
        let first = try ddp(Self.common + ["--checkpoint-dir", dir.path, "--checkpoint-every", "10",
                                           "--max-steps", "40"])
        expectEnded(first, status: 0)
        let theirs = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(theirs == ["checkpoint-00000030.safetensors", "checkpoint-00000040.safetensors"])
        // before: a 20-step job wrote steps 10 and 20, pruned them at once (the two newest were the
        // other job's) and exited 0 with no checkpoint of its own
        let second = try ddp(Self.common + ["--checkpoint-dir", dir.path, "--checkpoint-every", "10",
                                            "--max-steps", "20"])
        expectEnded(second, status: ExitStatus.failure)
        #expect(errorLines(second, containing: "holds another job's checkpoints (steps 30, 40)") == 1,
                "\(second.output)")
        #expect(second.output.contains("--resume") && second.output.contains("--overwrite-checkpoints"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == theirs)
        let replaced = try ddp(Self.common + ["--checkpoint-dir", dir.path, "--checkpoint-every", "10",
                                              "--max-steps", "20",
                                              "--overwrite-checkpoints"])
        expectEnded(replaced, status: 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
                == ["checkpoint-00000010.safetensors", "checkpoint-00000020.safetensors"])
        // resuming its own checkpoints, a job still prunes them
        let resumed = try ddp(Self.common + ["--checkpoint-dir", dir.path, "--checkpoint-every", "10",
                                             "--max-steps", "40",
                                             "--resume"])
        expectEnded(resumed, status: 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
                == ["checkpoint-00000030.safetensors", "checkpoint-00000040.safetensors"])
    }

    @Test("--resume in a directory shared with another job prunes only its own checkpoints; --precise-bn may be added")
    func resumeAmongOtherJobs() throws {
        let dir = TemporaryDirectory()
        let first = try ddp(Self.common + ["--checkpoint-dir", dir.path, "--checkpoint-every", "10",
                                           "--max-steps", "20"])
        expectEnded(first, status: 0)
        // another job (another learning rate) whose checkpoints end up in the same directory
        let other = try ddp(Self.common + ["--lr", "0.2", "--checkpoint-dir", dir.path + "/other", "--checkpoint-every",
                                           "7", "--max-steps", "49"])
        expectEnded(other, status: 0)
        for name in try FileManager.default.contentsOfDirectory(atPath: dir.path + "/other") {
            try FileManager.default.moveItem(atPath: dir.path + "/other/" + name, toPath: dir.path + "/" + name)
        }
        // precise BN changes only the end of the run, so it does not make the checkpoints another job's;
        // with --no-eval it still recomputes the statistics (for --save)
        let resumed = try ddp(Self.common + ["--checkpoint-dir", dir.path, "--checkpoint-every", "10",
                                             "--max-steps", "40", "--resume", "--precise-bn", "256"])
        expectEnded(resumed, status: 0)
        #expect(resumed.output.contains("resuming from step 20"), "\(resumed.output)")
        #expect(resumed.output.contains("precise BN: running statistics recomputed over 256 training samples"),
                "\(resumed.output)")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("checkpoint-") }
        #expect(names.sorted() == ["checkpoint-00000030.safetensors", "checkpoint-00000040.safetensors",
                                   "checkpoint-00000042.safetensors", "checkpoint-00000049.safetensors"],
                "this job's two newest and the other job's, untouched")
    }

    @Test("ddp export writes a checkpoint's model as --save does; anything else is refused with one line")
    func export() throws {
        let dir = TemporaryDirectory()
        let run = try ddp(Self.common + ["--checkpoint-dir", dir.path + "/ck", "--checkpoint-every", "10",
                                         "--max-steps", "20",
                                         "--save", dir.path + "/saved.safetensors"])
        expectEnded(run, status: 0)
        let checkpoint = dir.path + "/ck/checkpoint-00000020.safetensors"
        let ddpPath = Executables.path("ddp")
        let export = try Executables.run(ddpPath, ["export", checkpoint, "--out", dir.path + "/e.safetensors"],
                                         timeout: 60)
        expectEnded(export, status: 0)
        #expect(try SafeTensors.read(dir.path + "/e.safetensors").tensors
                == SafeTensors.read(dir.path + "/saved.safetensors").tensors)
        var bytes = [UInt8](try #require(FileManager.default.contents(atPath: checkpoint)))
        bytes[bytes.count - 100] ^= 0xFF
        replaceFile(checkpoint, with: Data(bytes))
        for (input, out, message) in [(checkpoint, dir.path + "/x.safetensors", "checksum mismatch"),
                                      (dir.path + "/saved.safetensors", dir.path + "/y.safetensors",
                                       "is not a SwiftDDP checkpoint"),
                                      (checkpoint, "/nonexistent/z.safetensors",
                                       "directory /nonexistent does not exist")] {
            let outcome = try Executables.run(ddpPath, ["export", input, "--out", out], timeout: 60)
            #expect(outcome.status != 0 && !outcome.timedOut, "\(message)")
            #expect(errorLines(outcome, containing: message) == 1, "\(outcome.output)")
            #expect(!FileManager.default.fileExists(atPath: out))
        }
    }

    @Test("--init-from takes a checkpoint's model: the same run as from the saved model; a corrupt one is refused")
    func initFromCheckpoint() throws {
        let dir = TemporaryDirectory()
        let first = try ddp(Self.common + ["--checkpoint-dir", dir.path + "/ck", "--checkpoint-every", "10",
                                           "--max-steps", "10", "--save", dir.path + "/model.safetensors"])
        expectEnded(first, status: 0)
        let checkpoint = dir.path + "/ck/checkpoint-00000010.safetensors"
        for (source, output) in [(checkpoint, "a"), (dir.path + "/model.safetensors", "b")] {
            let next = try ddp(Self.common + ["--init-from", source, "--max-steps", "3",
                                              "--save", dir.path + "/\(output).safetensors"])
            expectEnded(next, status: 0)
        }
        #expect(try SafeTensors.read(dir.path + "/a.safetensors").tensors
                    == SafeTensors.read(dir.path + "/b.safetensors").tensors)
        var bytes = [UInt8](try #require(FileManager.default.contents(atPath: checkpoint)))
        bytes[bytes.count - 100] ^= 0xFF
        replaceFile(checkpoint, with: Data(bytes))
        try expectCleanFailure(Self.common + ["--init-from", checkpoint], "checksum mismatch")
    }

    /// The collectives the surviving ranks are blocked in when one fails: by default shared memory
    /// (the sharded gradient sync, the mailbox); over MPI, the pairwise all-reduces of small gradient
    /// buckets, several in flight, and SyncBN's statistics as MPI collectives.
    static let collectivePaths: [(arguments: [String], exporting: [String])] = [
        ([], []),
        (["--norm", "syncbn", "--grad-sync", "bucketed", "--bucket-mb", "0.002"], ["SWIFTDDP_SMALL_COLLECTIVES=mpi"]),
    ]

    /// "Promptly": the job ends by itself (seconds, printed) rather than at the test's timeout.
    @Test("a rank killed with SIGKILL ends the whole job promptly, naming the rank", arguments: collectivePaths)
    func killedRank(path: (arguments: [String], exporting: [String])) throws {
        let outcome = try Executables.mpirun(np: 4, "ddp", Self.common + path.arguments + [
            "--debug-fail", "kill", "--debug-fail-rank", "2", "--debug-fail-step", "5"],
                                             exporting: path.exporting, timeout: 120)
        expectEnded(outcome, status: ExitStatus.killed)
        #expect(outcome.output.contains("rank 2") && outcome.output.contains("signal 9"), "\(outcome.output)")
    }

    @Test("shared memory that cannot be set up: shared sync falls back to one all-reduce and says why")
    func sharedMemoryUnavailable() throws {
        // The shared file goes where SWIFTDDP_SHM_DIR says; a directory that does not exist
        // fails the set-up on the host's first rank, and every rank must fall back alike.
        let dir = TemporaryDirectory()
        let missing = dir.path + "/no-such-dir"
        let outcome = try Executables.run(Executables.mpirunPath, ["-np", "2", "--oversubscribe"]
            + Executables.localJobArguments
            + ["-x", "OPENBLAS_NUM_THREADS", "-x", "SWIFTDDP_SHM_DIR=\(missing)", Executables.path("ddp"), "train",
               "--synthetic", "--synthetic-train", "256", "--synthetic-test", "64", "--depth", "2", "--width", "32",
               "--max-steps", "3", "--grad-sync", "shared"], timeout: 120)
        expectEnded(outcome, status: 0)
        #expect(outcome.output.contains("gradient sync shared → one all-reduce (shared memory for the ranks "
                                        + "on this host could not be set up (create): open(\(missing)/swiftddp-"),
                "\(outcome.output)")
        #expect(outcome.output.contains("No such file or directory") && outcome.output.contains("done: 3 steps"),
                "\(outcome.output)")
        // and with SWIFTDDP_SHM_DIR pointing somewhere usable, the job uses it and leaves nothing there
        let usable = try Executables.run(Executables.mpirunPath, ["-np", "2", "--oversubscribe"]
            + Executables.localJobArguments
            + ["-x", "OPENBLAS_NUM_THREADS", "-x", "SWIFTDDP_SHM_DIR=\(dir.path)", Executables.path("ddp"), "train",
               "--synthetic", "--synthetic-train", "256", "--synthetic-test", "64", "--depth", "2", "--width", "32",
               "--max-steps", "3"], timeout: 120)
        expectEnded(usable, status: 0)
        #expect(usable.output.contains("gradient sync sharded (through shared memory"), "\(usable.output)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty, "the shared file was unlinked")
    }

    @Test("a rank that throws ends the whole job promptly with its rank and message", arguments: collectivePaths)
    func throwingRank(path: (arguments: [String], exporting: [String])) throws {
        let outcome = try Executables.mpirun(np: 4, "ddp", Self.common + path.arguments + [
            "--debug-fail", "throw", "--debug-fail-rank", "3", "--debug-fail-step", "5"],
                                             exporting: path.exporting, timeout: 120)
        expectEnded(outcome, status: ExitStatus.failure)
        #expect(errorLines(outcome, containing: "ddp: error: rank 3: injected failure at step 5") == 1,
                "\(outcome.output)")
    }

    @Test("non-finite gradients on one rank: all ranks stop with one message; no checkpoint holds NaN")
    func nonFiniteStops() throws {
        let dir = TemporaryDirectory()
        let outcome = try ddp(Self.common + ["--debug-fail", "nan", "--debug-fail-rank", "1", "--debug-fail-step", "25",
                                             "--checkpoint-dir", dir.path, "--checkpoint-every", "10"])
        expectEnded(outcome, status: ExitStatus.failure)
        #expect(errorLines(outcome, containing: "non-finite gradients at step 25") == 1, "\(outcome.output)")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(names == ["checkpoint-00000010.safetensors", "checkpoint-00000020.safetensors"],
                "the checkpoints before the NaN, none after")
        for name in names {
            let tensors = try SafeTensors.read(dir.path + "/" + name).tensors
            let finite = try tensors.values.filter { $0.dtype == .f32 }
                .allSatisfy { try $0.floats().allSatisfy(\.isFinite) }
            #expect(finite, "\(name) holds non-finite values")
        }
    }

    @Test("--skip-nonfinite skips the poisoned step, leaving parameters and optimizer state untouched, and finishes",
          arguments: ["sharded", "flat"])
    func nonFiniteSkipped(gradSync: String) throws {
        let dir = TemporaryDirectory()
        func save(_ name: String) -> [String] {
            ["--grad-sync", gradSync, "--schedule", "constant", "--save", dir.path + "/\(name).safetensors",
             "--save-optimizer", dir.path + "/\(name)-opt.safetensors"]
        }
        let outcome = try ddp(Self.common + ["--debug-fail", "nan", "--debug-fail-rank", "1", "--debug-fail-step", "25",
                                             "--skip-nonfinite", "--max-steps", "25"] + save("skipped"))
        expectEnded(outcome, status: 0)
        #expect(outcome.output.contains("skipped step 25") && outcome.output.contains("1 non-finite steps skipped"))
        let before = try ddp(Self.common + ["--max-steps", "24"] + save("before"))
        expectEnded(before, status: 0)
        // Step 25 ran forward (BatchNorm's running statistics moved, as in PyTorch) but no update.
        let skipped = try SafeTensors.read(dir.path + "/skipped.safetensors").tensors
        let reference = try SafeTensors.read(dir.path + "/before.safetensors").tensors
        let parameters = reference.keys.filter { $0.hasSuffix(".weight") || $0.hasSuffix(".bias") }.sorted()
        #expect(parameters.count == 10, "3 Linear and 2 BatchNorm layers: \(parameters)")
        for key in parameters { #expect(skipped[key] == reference[key], "\(key) unchanged by the skipped step") }
        let momentum = try SafeTensors.read(dir.path + "/skipped-opt.safetensors").tensors
        #expect(try momentum == SafeTensors.read(dir.path + "/before-opt.safetensors").tensors,
                "momentum unchanged by the skipped step")
        // and training goes on after the skipped step
        let after = try ddp(Self.common + ["--debug-fail", "nan", "--debug-fail-rank", "1", "--debug-fail-step", "25",
                                           "--skip-nonfinite", "--max-steps", "30"] + save("after"))
        expectEnded(after, status: 0)
        #expect(try SafeTensors.read(dir.path + "/after.safetensors").tensors["0.weight"] != reference["0.weight"])
    }

    @Test("ranks started with different options refuse to train, with one message")
    func differingConfigurations() throws {
        let binary = Executables.path("ddp")
        let outcome = try Executables.run("/usr/bin/mpirun", ["--oversubscribe"] + Executables.localJobArguments + [
            "-np", "1", binary, "train", "--synthetic", "--lr", "0.1", ":",
            "-np", "1", binary, "train", "--synthetic", "--lr", "0.2"], timeout: 120)
        expectEnded(outcome, status: ExitStatus.failure)
        #expect(errorLines(outcome, containing: "configuration of rank 1 differs") == 1, "\(outcome.output)")
    }

    // MARK: Bad input: one clear line, non-zero exit, no crash trace

    func expectCleanFailure(_ arguments: [String], _ message: String, np: Int = 2,
                            sourceLocation: SourceLocation = #_sourceLocation) throws
    {
        let outcome = try ddp(np: np, arguments, timeout: 120)
        expectEnded(outcome, status: ExitStatus.failure, "\(arguments)", sourceLocation: sourceLocation)
        #expect(errorLines(outcome, containing: message) == 1,
                "expected one line with \"\(message)\":\n\(outcome.output)")
        #expect(!outcome.output.contains("Fatal error") && !outcome.output.contains("Stack dump") &&
                !outcome.output.contains("MPI_ABORT"), "\(outcome.output)")
    }

    /// A Fashion-MNIST-like directory of 28×28 images, broken by `damage`.
    func dataDirectory(_ damage: (TemporaryDirectory) -> Void) -> TemporaryDirectory {
        let dir = TemporaryDirectory()
        writeSplit(dir, prefix: "train", count: 64, rows: 28, cols: 28)
        writeSplit(dir, prefix: "t10k", count: 16, rows: 28, cols: 28)
        damage(dir)
        return dir
    }

    @Test("truncated gzip") func truncatedGzip() throws {
        let dir = dataDirectory { d in
            let p = d.path + "/train-images-idx3-ubyte.gz"
            let b = FileManager.default.contents(atPath: p) ?? Data()
            replaceFile(p, with: b.prefix(b.count / 2))
        }
        try expectCleanFailure(["train", "--data", dir.path], "truncated")
    }

    @Test("corrupt gzip") func corruptGzip() throws {
        let dir = dataDirectory { d in
            let p = d.path + "/train-labels-idx1-ubyte.gz"
            var b = [UInt8](FileManager.default.contents(atPath: p) ?? Data())
            for i in 12..<min(40, b.count - 8) { b[i] ^= 0x5A }
            replaceFile(p, with: Data(b))
        }
        try expectCleanFailure(["train", "--data", dir.path], "gzip data is corrupt")
    }

    @Test("wrong IDX magic bytes") func wrongMagicBytes() throws {
        let dir = dataDirectory { d in
            _ = d.write("t10k-labels-idx1-ubyte.gz", gzipCompress([0x12, 0x34, 8, 1, 0, 0, 0, 1, 3]))
        }
        try expectCleanFailure(["train", "--data", dir.path], "bad IDX magic")
    }

    @Test("wrong IDX dimension count") func wrongMagic() throws {
        let dir = dataDirectory { d in
            _ = d.write("t10k-labels-idx1-ubyte.gz", gzipCompress([0, 0, 8, 2] + [UInt8](repeating: 0, count: 24)))
        }
        try expectCleanFailure(["train", "--data", dir.path], "2 dimensions, expected 1")
    }

    @Test("image and label counts differ") func countsDiffer() throws {
        let dir = dataDirectory { d in
            writeSplit(d, prefix: "t10k", count: 16, labels: [UInt8](repeating: 1, count: 15), rows: 28, cols: 28)
        }
        try expectCleanFailure(["train", "--data", dir.path], "16 images but 15 labels")
    }

    @Test("labels out of range") func labelsOutOfRange() throws {
        let dir = dataDirectory { d in
            writeSplit(d, prefix: "train", count: 64, labels: [UInt8](repeating: 11, count: 64), rows: 28, cols: 28)
        }
        try expectCleanFailure(["train", "--data", dir.path], "label 11")
    }

    @Test("corrupt safetensors given to --init-from", arguments: [
        ("past-end", "past the end of the file"), ("absurd", "limit"), ("overlap", "overlaps"),
        ("range", "outside"), ("dtype", "expected dtype F32"), ("shape", "expected shape"),
    ])
    func corruptInitFrom(kind: String, message: String) throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/bad.safetensors"
        func header(_ json: String, data: Int) -> [UInt8] {
            var out = [UInt8]()
            withUnsafeBytes(of: UInt64(json.utf8.count).littleEndian) { out += $0 }
            return out + Array(json.utf8) + [UInt8](repeating: 0, count: data)
        }
        switch kind {
        case "past-end": _ = dir.write("bad.safetensors", [200, 0, 0, 0, 0, 0, 0, 0] + Array("{}".utf8))
        case "absurd": _ = dir.write("bad.safetensors", [0, 0, 0, 0, 0, 1, 0, 0] + [UInt8](repeating: 32, count: 16))
        case "overlap":
            _ = dir.write("bad.safetensors",
                          header(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":"#
                                 + #"{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: 8))
        case "range": _ = dir.write("bad.safetensors",
                                    header(#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: 8))
        default:
            // a valid file of the right keys with one tensor of the wrong dtype or shape
            let good = dir.path + "/good.safetensors"
            let saved = try ddp(["train", "--synthetic", "--max-steps", "1", "--no-eval", "--save", good])
            expectEnded(saved, status: 0)
            var tensors = try SafeTensors.read(good).tensors
            tensors["0.weight"] = kind == "dtype"
                ? TensorData(int64s: [Int64](repeating: 0, count: 256 * 784), shape: [256, 784])
                : TensorData(floats: [Float](repeating: 0, count: 256 * 784), shape: [784, 256])
            try SafeTensors.write(tensors, to: path)
        }
        try expectCleanFailure(["train", "--synthetic", "--max-steps", "1", "--init-from", path], message)
    }

    @Test("the launcher counts slots from a hostfile, a Slurm allocation or the local cores",
          arguments: [
              // (environment, extra arguments, -np, whether --oversubscribe is expected)
              (["SLURM_JOB_ID": "7", "SLURM_NTASKS": "64"], [String](), 64, false),
              (["SLURM_JOB_ID": "7", "SLURM_TASKS_PER_NODE": "16(x3),8"], [], 56, false),
              (["SLURM_JOB_ID": "7", "SLURM_TASKS_PER_NODE": "16(x3),8"], [], 57, true),
              ([:], ["--hostfile", "HOSTS"], 5, false),
              ([:], ["--hostfile", "HOSTS"], 6, true),
              ([:], [], 1000, true),
          ])
    func launcherSlots(environment: [String: String], extra: [String], np: Int, oversubscribed: Bool) throws {
        let dir = TemporaryDirectory()
        let hostfile = dir.write("hosts", Array("# two hosts\nnode1 slots=2\nnode2 slots=3 max_slots=4\n".utf8))
        let launcher = Executables.packageFile("scripts/launch.sh")
        // SLURM_* from a surrounding allocation must not leak into the cases without one.
        let unset = ProcessInfo.processInfo.environment.keys.filter { $0.hasPrefix("SLURM_") }.flatMap { ["-u", $0] }
        let args = [launcher, "--dry-run", "-np", String(np)] + extra.map { $0 == "HOSTS" ? hostfile : $0 }
            + ["--", "info"]
        let outcome = try Executables.run("/usr/bin/env", unset + ["/bin/bash"] + args, environment: environment,
                                          timeout: 60)
        expectEnded(outcome, status: 0)
        #expect(outcome.output.contains("+ mpirun -np \(np) "), "\(outcome.output)")
        #expect(outcome.output.contains("--oversubscribe") == oversubscribed, "\(outcome.output)")
    }

    @Test("a hostfile that does not parse is refused by the launcher")
    func badHostfile() throws {
        let dir = TemporaryDirectory()
        let hostfile = dir.write("hosts", Array("localhost slots=2\nnode2 slots=two\n".utf8))
        let launcher = Executables.packageFile("scripts/launch.sh")
        let outcome = try Executables.run("/bin/bash", [launcher, "-np", "2", "--hostfile", hostfile, "--", "info"],
                                          timeout: 120)
        expectEnded(outcome, status: ExitStatus.launcher)
        #expect(errorLines(outcome, containing: "hosts:2: cannot parse \"slots=two\" (a host line is: NAME [slots=N]")
                == 1, "\(outcome.output)")
    }

    /// A rank that outlives a failed one by a moment may print Open MPI's "peer process has
    /// unexpectedly disconnected" block (seen when the survivor waited outside MPI calls), or a failed
    /// single-copy read from the dead peer's memory (seen with pairwise all-reduces in flight), before
    /// or after mpirun's own account of the failed rank.
    @Test("the launcher's filter folds a surviving rank's lost-peer note: one line, only when nothing says more",
          arguments: ["after the job's error", "alone", "before mpirun's signal block"], [false, true])
    func lostPeerBlock(case situation: String, readFailed: Bool) throws {
        let dashes = String(repeating: "-", count: 74)
        let lostPeer = readFailed ? ["[node1:26551] Read -1, expected 25184, errno = 3"] : [
            dashes, "An MPI communication peer process has unexpectedly disconnected.  This",
            "usually indicates a failure in the peer process (e.g., a crash or", "",
            "  Local host: node1", "  Local PID:  26551", "  Peer host:  node2", dashes,
        ]
        let signal = [dashes, "mpirun noticed that process rank 1 with PID 26552 on node node2 exited on signal 9 "
                      + "(Killed).", dashes]
        let first = situation == "after the job's error" ? "ddp: error: rank 1: injected failure at step 2" : "step 1/4"
        let text = [first] + lostPeer + (situation == "before mpirun's signal block" ? signal : [])
        let expected: [String] = switch situation {
        case "alone":
            [first, readFailed ? "launch: a rank on node1 lost a peer process (reading its memory: errno 3)"
                               : "launch: a rank on node1 lost its connection to a peer on node2"]
        case "before mpirun's signal block": [first, "launch: rank 1 on node node2 exited on signal 9 (Killed)"]
        default: [first]
        }
        let dir = TemporaryDirectory()
        try (text.joined(separator: "\n") + "\n").write(toFile: dir.path + "/stderr", atomically: true,
                                                        encoding: .utf8)
        let outcome = try Executables.run("/usr/bin/awk", ["-f", Executables.packageFile("scripts/mpirun-quiet.awk"),
                                                           dir.path + "/stderr"], timeout: 30)
        expectEnded(outcome, status: 0)
        #expect(outcome.output.split(separator: "\n").map(String.init) == expected, "\(outcome.output)")
    }

    /// Only a peer that is gone (ESRCH) is folded: a read refused for another reason (EPERM where
    /// ptrace is restricted) is news, and stays.
    @Test("the launcher's filter keeps a failed read from a peer that is still there")
    func otherReadFailure() throws {
        let dir = TemporaryDirectory()
        let line = "[node1:26551] Read -1, expected 25184, errno = 1"
        try (line + "\nstep 1/4\n").write(toFile: dir.path + "/stderr", atomically: true, encoding: .utf8)
        let outcome = try Executables.run("/usr/bin/awk", ["-f", Executables.packageFile("scripts/mpirun-quiet.awk"),
                                                           dir.path + "/stderr"], timeout: 30)
        expectEnded(outcome, status: 0)
        #expect(outcome.output.split(separator: "\n").map(String.init) == [line, "step 1/4"], "\(outcome.output)")
    }

    @Test("a hostfile host that does not resolve is named by the launcher before mpirun starts")
    func unresolvableHost() throws {
        let dir = TemporaryDirectory()
        let hostfile = dir.write("hosts", Array("localhost slots=1\nno-such-host.invalid slots=2\n".utf8))
        let launcher = Executables.packageFile("scripts/launch.sh")
        let outcome = try Executables.run("/bin/bash", [launcher, "-np", "3", "--hostfile", hostfile, "--", "info"],
                                          environment: ["DDP_BIN_DIR": Executables.binDirectory.path], timeout: 60)
        expectEnded(outcome, status: ExitStatus.launcher)
        #expect(errorLines(outcome, containing: "host 'no-such-host.invalid' does not resolve") == 1,
                "\(outcome.output)")
        #expect(!outcome.output.contains("+ mpirun"), "nothing started:\n\(outcome.output)")
    }

    /// mpirun follows a failed job with 8-12 lines of its own; through the launcher the job's
    /// error stays the last line and the exit status is mpirun's.
    @Test("through the launcher a failed job's own error is the last line, without mpirun's boilerplate",
          arguments: [
              // (failure, exit status, the last line's text)
              (["--data", "/no/such/dir"], ExitStatus.failure, "ddp: error:"),
              (["--synthetic", "--debug-fail", "throw", "--debug-fail-rank", "1", "--debug-fail-step", "2"],
               ExitStatus.failure, "ddp: error: rank 1: injected failure at step 2"),
              (["--synthetic", "--debug-fail", "kill", "--debug-fail-rank", "1", "--debug-fail-step", "2"],
               ExitStatus.killed, "launch: rank 1 on node"),
          ])
    func launcherKeepsErrorLast(failure: [String], status: Int32, last: String) throws {
        let launcher = Executables.packageFile("scripts/launch.sh")
        let outcome = try Executables.run("/bin/bash", [launcher, "-np", "2"] + Executables.localJobArguments
                                            + ["--", "train", "--max-steps", "4"] + failure,
                                          environment: ["DDP_BIN_DIR": Executables.binDirectory.path], timeout: 120)
        expectEnded(outcome, status: status)
        let lines = outcome.output.split(separator: "\n").map(String.init)
            .filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        #expect(lines.last?.contains(last) == true, "last line:\n\(outcome.output)")
        for noise in ["Primary job", "mpirun detected", "MPI_ABORT was invoked", "sent help message", "-----",
                      "ORTE_ERROR_LOG"] {
            #expect(!outcome.output.contains(noise), "\(noise):\n\(outcome.output)")
        }
        if status == ExitStatus.killed {
            #expect(lines.last?.contains("exited on signal 9") == true, "\(outcome.output)")
        }
    }
}
