import Foundation
import SwiftDDPSafeTensors
import Testing
@testable import SwiftDDPTestSupport
/// Whether this machine lets the tests create network namespaces (root and `ip netns`).
private let namespacesPermitted: Bool = {
    guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") else { return false }
    let probe = try? Executables.run("/bin/sh", ["-c", "ip netns add ddpprobe$$ && ip netns delete ddpprobe$$"],
                                     timeout: 30)
    return probe?.status == 0
}()

private var repositoryRoot: URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
}

/// Two simulated nodes (network namespaces joined by a bridge, launched through
/// scripts/netns-agent.sh as mpirun's rsh agent), two ranks each, TCP between nodes.
/// Skipped, with the reason in the test name, where namespaces cannot be created (not root,
/// or no CAP_SYS_ADMIN in a container).
@Suite("Multi-node on simulated nodes", .serialized,
       .enabled(if: namespacesPermitted, "network namespaces are not permitted here (needs root and ip netns)"))
struct MultiNodeTests {
    /// The 4-rank SyncBN run that the hostfile and Slurm paths both compare with one node.
    static let fourRankTrain = "train --synthetic --synthetic-train 1024 --norm syncbn --max-steps 12 --seed 3 "
        + "--batch-size 8 --width 32 --no-eval"
    static let launcher = repositoryRoot.appendingPathComponent("scripts/launch.sh").path

    /// mpirun notices a vanished host by its daemon's keepalives: after 300 s of silence by
    /// default, here after a few seconds (Docs/multi-node.md).
    static let keepalive = "--mca oob_tcp_keepalive_time 2 --mca oob_tcp_keepalive_intvl 1 "
        + "--mca oob_tcp_keepalive_probes 3"

    /// A node lost mid-run (its processes killed, its namespace deleted): the launcher relaunches
    /// the job on the node that still answers, from the 4-rank checkpoint on 2 ranks; with SyncBN
    /// and a fixed global batch the run ends where the uninterrupted one does.
    @Test("a node removed mid-run: launch.sh --max-restarts finishes on the other node, as the uninterrupted run")
    func nodeRemoved() throws {
        let dir = TemporaryDirectory()
        let script = repositoryRoot.appendingPathComponent("scripts/netns-cluster.sh").path
        let state = dir.path + "/netns", ck = dir.path + "/ck"
        let train = "train --synthetic --synthetic-train 4096 --depth 2 --width 32 --global-batch-size 16 --epochs 3 "
            + "--seed 4 --log-every 1000 --no-eval"
        let outcome = try Executables.run("/bin/bash", ["-c", """
            export DDP_NETNS_STATE=\(state)
            \(script) run 2 -- bash -c '
                DDP_BIN_DIR=\(Executables.binDirectory.path) \(Self.launcher) -np 4 --max-restarts 1 --min-np 2 \
                    $(cat \(state)/mpirun-args) \(Self.keepalive) -- \(train) \
                    --checkpoint-dir \(ck) --checkpoint-every 40 \
                    --save \(dir.path)/run.safetensors &
                job=$!
                for _ in $(seq 1 1200); do [ -e \(ck)/checkpoint-00000040.safetensors ] && break; sleep 0.02; done
                ip netns pids ddpnode2 | xargs -r kill -9; ip netns delete ddpnode2
                echo "test: removed ddpnode2"
                wait $job'
            """], timeout: 600)
        expectEnded(outcome, status: 0)
        for text in ["test: removed ddpnode2", "host 'ddpnode2' does not answer its launch agent",
                     "running on 2 ranks (of 4)", "restart 1 of 1", "the checkpoint was written by 4 ranks"] {
            #expect(outcome.output.contains(text), "\(text):\n\(outcome.output)")
        }
        let single = try Executables.mpirun(np: 2, "ddp", train.split(separator: " ").map(String.init)
                                            + ["--save", dir.path + "/one.safetensors"], timeout: 300)
        expectEnded(single, status: 0)
        let a = try SafeTensors.read(dir.path + "/one.safetensors").tensors
        let b = try SafeTensors.read(dir.path + "/run.safetensors").tensors
        for (key, expected) in a.sorted(by: { $0.key < $1.key }) where expected.dtype == .f32 {
            let actual = try #require(b[key], "\(key)")
            let error = relativeError(try actual.floats().map(Double.init), try expected.floats().map(Double.init))
            #expect(error < 1e-5, "\(key): \(error)")
        }
    }

    @Test("SyncBN on 2 simulated nodes × 2 ranks equals the one-node run with 4 ranks")
    func equalsOneNode() throws {
        let dir = TemporaryDirectory()
        let ddp = Executables.path("ddp")
        let train = Self.fourRankTrain
        let script = repositoryRoot.appendingPathComponent("scripts/netns-cluster.sh").path
        let launcher = Self.launcher
        let state = dir.path + "/netns"
        let multi = try Executables.run("/bin/bash", ["-c", """
            export DDP_NETNS_STATE=\(state)
            \(script) run 2 -- bash -c 'DDP_BIN_DIR=\(Executables.binDirectory.path) \
            \(launcher) -np 4 $(cat \(state)/mpirun-args) -- info && \
            mpirun $(cat \(state)/mpirun-args) -np 4 -x OPENBLAS_NUM_THREADS=1 \(ddp) \(train) \
            --save \(dir.path)/nodes.safetensors && \
            mpirun $(cat \(state)/mpirun-args) -np 4 -x OPENBLAS_NUM_THREADS=1 \(ddp) \(train) \
            --grad-sync flat --save \(dir.path)/nodes-flat.safetensors && \
            mpirun $(cat \(state)/mpirun-args) -np 3 -x OPENBLAS_NUM_THREADS=1 \(ddp) \(train) --synthetic-train 96'
            """], timeout: 300)
        expectEnded(multi, status: 0)
        #expect(multi.output.contains("rank 0: host ddpnode1") && multi.output.contains("rank 3: host ddpnode2"),
                "ranks placed on both simulated nodes:\n\(multi.output)")
        #expect(multi.output.contains("cache-line round trip not measured (the ranks span hosts"),
                "no shared-memory probe across nodes:\n\(multi.output)")
        #expect(multi.output.contains("gradient sync: sharded (through shared memory on each host"),
                "ddp info tells the path:\n\(multi.output)")
        // The default (sharded) is hierarchical across nodes: shared memory inside each node.
        #expect(multi.output.contains(
            "gradient sync sharded (through shared memory on each host, then one all-reduce of 1/2 per rank "
                + "between hosts; each rank updates 1/2 of its host's model)"),
            "\(multi.output)")
        // 3 ranks on 2 nodes (2 + 1): no common part size, so one all-reduce, and the line says why.
        #expect(multi.output.contains(
            "gradient sync sharded → one all-reduce (hosts run different numbers of ranks, 1 to 2)"),
            "\(multi.output)")
        #expect(multi.output.contains("torn down"))
        #expect(!FileManager.default.fileExists(atPath: state), "teardown removed the cluster state")
        try expectEqualToOneNode(np: 4, train: train, in: dir, runs: ["nodes", "nodes-flat"])
    }

    @Test("a rank that throws or meets NaN on a simulated node ends the hierarchical job promptly, all ranks agreeing")
    func failuresAcrossNodes() throws {
        let dir = TemporaryDirectory()
        let ddp = Executables.path("ddp")
        let script = repositoryRoot.appendingPathComponent("scripts/netns-cluster.sh").path
        let state = dir.path + "/netns"
        let train = "train --synthetic --synthetic-train 4096 --norm syncbn --epochs 2 --batch-size 16 --width 32"
        // Each fault on rank 3 (second node) at step 20; `timeout` turns a hang into status 124.
        let outcome = try Executables.run("/bin/bash", ["-c", """
            export DDP_NETNS_STATE=\(state)
            \(script) run 2 -- bash -c 'for fault in throw nan; do
                timeout 60 mpirun $(cat \(state)/mpirun-args) -np 4 -x OPENBLAS_NUM_THREADS=1 \(ddp) \(train) \
                    --debug-fail $fault --debug-fail-rank 3 --debug-fail-step 20
                echo "status of $fault: $?"
            done'
            """], timeout: 300)
        #expect(outcome.output.contains("gradient sync sharded (through shared memory on each host"),
                "\(outcome.output)")
        // exact lines: "status of throw: 124" would be a hang cut short by `timeout`
        let lines = outcome.output.split(separator: "\n").map(String.init)
        expectEnded(outcome, status: 0)
        #expect(lines.contains("status of throw: 1") && outcome.output.contains("rank 3: injected failure at step 20"),
                "\(outcome.output)")
        #expect(lines.contains("status of nan: 1")
                && outcome.output.split(separator: "\n")
                    .filter { $0.contains("non-finite gradients at step 20") }.count == 1,
            "NaN on rank 3 reaches every rank through the cross-node all-reduce: one agreed message\n\(outcome.output)")
    }

    @Test("emulated links add the configured delay, and training across them equals the one-node run",
          .enabled(if: FileManager.default.fileExists(atPath: "/dev/net/tun"), "no /dev/net/tun for the link emulator"))
    func emulatedLinks() throws {
        let dir = TemporaryDirectory()
        let ddp = Executables.path("ddp")
        let train = "train --synthetic --synthetic-train 512 --norm syncbn --grad-sync bucketed --bucket-mb 0.002 "
            + "--max-steps 8 --seed 5 --batch-size 8 --width 32 --no-eval"
        let script = repositoryRoot.appendingPathComponent("scripts/netns-cluster.sh").path
        let state = dir.path + "/netns"
        // A TCP ping-pong between the nodes: 20 round trips of 8 bytes, median in ms.
        let pingPong = """
            import socket, statistics, sys, time
            if sys.argv[1] == "serve":
                s = socket.socket(); s.bind(("10.77.0.3", 5099)); s.listen(); c, _ = s.accept()
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                while (b := c.recv(64)): c.sendall(b)
            else:
                for _ in range(50):
                    try: s = socket.create_connection(("10.77.0.3", 5099)); break
                    except OSError: time.sleep(0.1)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1); rtts = []
                for _ in range(20):
                    t = time.perf_counter(); s.sendall(b"12345678"); s.recv(64); \
            rtts.append((time.perf_counter() - t) * 1e3)
                print(f"median rtt ms {statistics.median(rtts):.3f}")
            """
        try pingPong.write(toFile: dir.path + "/pingpong.py", atomically: true, encoding: .utf8)
        let multi = try Executables.run("/bin/bash", ["-c", """
            export DDP_NETNS_STATE=\(state)
            \(script) run 2 --emulate "delay 5ms rate 1gbit" -- bash -c '
                ip netns exec ddpnode2 python3 \(dir.path)/pingpong.py serve & 
                ip netns exec ddpnode1 python3 \(dir.path)/pingpong.py connect; wait
                mpirun $(cat \(state)/mpirun-args) -np 2 --map-by ppr:1:node -x OPENBLAS_NUM_THREADS=1 \
            \(ddp) \(train) --save \(dir.path)/nodes.safetensors'
            """], timeout: 300)
        expectEnded(multi, status: 0)
        let rtt = multi.output.split(separator: "\n").first { $0.hasPrefix("median rtt ms ") }
            .flatMap { Double($0.dropFirst("median rtt ms ".count)) }
        #expect(rtt != nil, "ping-pong ran:\n\(multi.output)")
        if let rtt {
            // 5 ms each way is the floor; what a busy machine adds on top is recorded, not asserted.
            #expect(rtt >= 10, "round trip \(rtt) ms for a 5 ms one-way delay")
            print(String(format: "emulated link: median round trip %.2f ms for a 5 ms one-way delay", rtt))
        }
        #expect(!FileManager.default.fileExists(atPath: state), "teardown removed the cluster state")
        try expectEqualToOneNode(np: 2, train: train, in: dir, runs: ["nodes"])
    }

    @Test("Slurm on 2 simulated nodes: the launcher inside salloc and srun --mpi=pmix both equal the one-node run",
          .enabled(if: ["slurmctld", "slurmd", "salloc", "munge"].allSatisfy { tool in
              ["/usr/sbin/", "/usr/bin/"].contains { FileManager.default.isExecutableFile(atPath: $0 + tool) }
          }, "Slurm is not installed (slurmctld slurmd slurm-client munge; scripts/test.sh installs them)"))
    func slurm() throws {
        let dir = TemporaryDirectory()
        let ddp = Executables.path("ddp")
        let train = Self.fourRankTrain
        let script = repositoryRoot.appendingPathComponent("scripts/slurm-cluster.sh").path
        let launcher = Self.launcher
        let state = dir.path + "/netns"
        // Each Slurm client runs in a process group of its own (setsid -w waits and passes the
        // exit status on): twice in ~15 full-suite runs the whole cluster script was killed at
        // once, without its teardown trap, during the first srun after salloc — the mark of a
        // signal sent to the script's process group, which the clients shared.
        // Debian's Open MPI 4.1.4 under `srun --mpi=pmix`: now and then (5 in ~315 runs on a
        // loaded 2-core machine) a rank still inside MPI_Init is sent its first TCP message too
        // early and dies of SIGSEGV in mca_btl_tcp, after its peer printed "failed to TCP connect".
        // That start-up crash, and only it, is retried once, visibly (Docs/multi-node.md).
        let srun = dir.path + "/srun-once-more.sh"
        try """
            #!/bin/bash
            out=$(setsid -w srun "$@" 2>&1); status=$?; echo "$out"
            if [ $status -eq 139 ] && grep -q "failed to TCP connect to a peer MPI process" <<<"$out"; then
                echo "srun-once-more: a rank died in Open MPI's TCP start-up race; running the step again"
                setsid -w srun "$@"; status=$?
            fi
            exit $status
            """.write(toFile: srun, atomically: true, encoding: .utf8)
        let outcome = try Executables.run("/bin/bash", ["-c", """
            export DDP_NETNS_STATE=\(state)
            \(script) run 2 -- bash -c '
                set -e
                sinfo
                setsid -w salloc -N 2 -n 4 env DDP_BIN_DIR=\(Executables.binDirectory.path) \
            \(launcher) -np 4 -- \(train) --save \(dir.path)/salloc.safetensors
                bash \(srun) --mpi=pmix -N 2 -n 4 \(ddp) info
                bash \(srun) --mpi=pmix -N 2 -n 4 \(ddp) \(train) --save \(dir.path)/srun.safetensors'
            """], timeout: 300)
        expectEnded(outcome, status: 0)
        #expect(outcome.output.contains("ddpnode[1-2]"),
                "both simulated nodes joined the Slurm cluster:\n\(outcome.output)")
        #expect(!outcome.output.contains("--oversubscribe"),
                "the launcher counts the allocation's 4 tasks as slots:\n\(outcome.output)")
        #expect(outcome.output.contains("rank 0: host ddpnode1") && outcome.output.contains("rank 3: host ddpnode2"),
                "srun placed ranks on both nodes:\n\(outcome.output)")
        #expect(!FileManager.default.fileExists(atPath: state), "teardown removed the cluster state")
        try expectEqualToOneNode(np: 4, train: train, in: dir, runs: ["salloc", "srun"])
    }

    /// Trains `train` with `np` ranks on this machine alone and expects every float tensor of
    /// each `runs` checkpoint (`dir/NAME.safetensors`, written by the multi-node run) to match it.
    private func expectEqualToOneNode(np: Int, train: String, in dir: TemporaryDirectory, runs: [String]) throws {
        let single = try Executables.mpirun(np: np, "ddp", train.split(separator: " ").map(String.init)
                                            + ["--save", dir.path + "/one.safetensors"], timeout: 120)
        expectEnded(single, status: 0)
        let reference = try SafeTensors.read(dir.path + "/one.safetensors").tensors
        for run in runs {
            let tensors = try SafeTensors.read(dir.path + "/\(run).safetensors").tensors
            #expect(Set(tensors.keys) == Set(reference.keys), "\(run)")
            for (key, expected) in reference.sorted(by: { $0.key < $1.key }) where expected.dtype == .f32 {
                let actual = try #require(tensors[key], "\(run): \(key)")
                let a = try actual.floats().map(Double.init), e = try expected.floats().map(Double.init)
                #expect(relativeError(a, e) < 1e-5, "\(run): \(key)")
            }
        }
    }

    @Test("the cluster script refuses to touch namespaces it did not create")
    func refusesForeignNamespaces() throws {
        let dir = TemporaryDirectory()
        let script = repositoryRoot.appendingPathComponent("scripts/netns-cluster.sh").path
        let outcome = try Executables.run("/bin/bash", ["-c", """
            ip netns add ddpnode1
            DDP_NETNS_STATE=\(dir.path)/s \(script) up 2; status=$?
            ip netns delete ddpnode1
            exit $status
            """], timeout: 60)
        expectEnded(outcome, status: 1)
        #expect(outcome.output.contains("was not created by this script"), "\(outcome.output)")
    }
}
