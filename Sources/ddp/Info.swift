import ArgumentParser
import SwiftDDPBLAS
import SwiftDDPCollectives
import SwiftDDPMPI
import SwiftDDPNN
import SwiftDDPTraining
/// `ddp info`: what the job looks like from inside (ranks, hosts, MPI and BLAS settings).
/// A quick check that a hostfile or Slurm allocation gives the layout you expect.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the MPI world (ranks per host), the MPI library, each rank's BLAS threads and kernels, "
            + "how far apart ranks 0 and 1 sit (cache-line round trip), and the path the default gradient sync takes.")

    func run() throws {
        try MPIRuntime.withRuntime { level in
            let group = try MPIProcessGroup.world()
            let hosts = try gatherHostNames(group)
            let threads = try group.allGather([Int32(BLAS.threadCount)])
            let kernels = try gatherStrings("OpenBLAS \(BLAS.coreName), element-wise \(elementwiseKernelLevel)", group)
            let roundTrip = try group.rankRoundTripNanoseconds()
            // The default gradient sync set up for a tiny model: the same decision (one host,
            // hierarchical, or one all-reduce and why) that `ddp train` will take on this layout.
            let probe = try ModelConfiguration(inputFeatures: 4, depth: 1, width: 4, classes: 2, norm: .none)
                .build(seed: 0)
            let (sync, optimizer) = try GradientSyncMode.sharded.make(
                model: probe, group: group, optimizer: try SGD(store: probe.store, learningRate: 0.1, momentum: 0.9))
            guard group.rank == 0 else { return }
            print("world size: \(group.worldSize)   thread level: \(level)")
            print("MPI library: \(MPIRuntime.libraryVersion.split(separator: "\n").first ?? "")")
            for r in 0..<group.worldSize {
                print("rank \(r): host \(hosts[r]), OpenBLAS threads \(threads[r]), kernels: \(kernels[r])")
            }
            // Where the ranks sit: tens of ns share a cache; hundreds cross dies or sockets.
            if let roundTrip {
                let reading = roundTrip < 150 ? "likely one shared cache"
                    : roundTrip < 2_000 ? "likely different dies or sockets"
                    : "likely sharing a CPU"
                print("ranks 0 and 1: cache-line round trip \(Int(roundTrip.rounded())) ns through shared memory "
                      + "(\(reading))")
            } else if group.worldSize > 1 {
                let why = Set(hosts).count > 1 ? "the ranks span hosts; the probe runs through one host's shared memory"
                    : "no shared memory for the probe, or a rank starved of CPU did not answer within 1 s"
                print("ranks 0 and 1: cache-line round trip not measured (\(why))")
            }
            print("gradient sync: \(syncDescription(sync, optimizer: optimizer!, worldSize: group.worldSize))")
        }
    }
}
