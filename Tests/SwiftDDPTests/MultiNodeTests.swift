import Foundation
import SafeTensors
import Testing

/// Whether this machine lets the tests create network namespaces (root and `ip netns`).
private let namespacesPermitted: Bool = {
    guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") else { return false }
    let probe = try? Executables.run("/bin/sh", ["-c", "ip netns add ddpprobe$$ && ip netns delete ddpprobe$$"], timeout: 30)
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
    @Test("SyncBN on 2 simulated nodes × 2 ranks equals the one-node run with 4 ranks")
    func equalsOneNode() throws {
        let dir = TemporaryDirectory()
        let ddp = Executables.path("ddp")
        let train = "train --synthetic --synthetic-train 1024 --norm syncbn --max-steps 12 --seed 3 --batch-size 8 --width 32 --no-eval"
        let script = repositoryRoot.appendingPathComponent("scripts/netns-cluster.sh").path
        let launcher = repositoryRoot.appendingPathComponent("scripts/launch.sh").path
        let state = dir.path + "/netns"
        let multi = try Executables.run("/bin/bash", ["-c", """
            export DDP_NETNS_STATE=\(state)
            \(script) run 2 -- bash -c 'DDP_BIN_DIR=\(Executables.binDirectory.path) \(launcher) -np 4 $(cat \(state)/mpirun-args) -- info && \
            mpirun $(cat \(state)/mpirun-args) -np 4 -x OPENBLAS_NUM_THREADS=1 \(ddp) \(train) --save \(dir.path)/nodes.safetensors'
            """], timeout: 300)
        #expect(multi.status == 0, "\(multi.output)")
        #expect(multi.output.contains("rank 0: host ddpnode1") && multi.output.contains("rank 3: host ddpnode2"),
                "ranks placed on both simulated nodes:\n\(multi.output)")
        #expect(multi.output.contains("torn down"))
        #expect(!FileManager.default.fileExists(atPath: state), "teardown removed the cluster state")
        let single = try Executables.mpirun(np: 4, "ddp", train.split(separator: " ").map(String.init)
                                            + ["--save", dir.path + "/one.safetensors"], timeout: 120)
        #expect(single.status == 0, "\(single.output)")
        let a = try SafeTensors.read(dir.path + "/nodes.safetensors").tensors
        let b = try SafeTensors.read(dir.path + "/one.safetensors").tensors
        for key in a.keys.sorted() where a[key]!.dtype == .f32 {
            #expect(relativeError(try a[key]!.floats().map(Double.init), try b[key]!.floats().map(Double.init)) < 1e-5, "\(key)")
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
        #expect(outcome.status != 0)
        #expect(outcome.output.contains("was not created by this script"), "\(outcome.output)")
    }
}
