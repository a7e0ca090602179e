import ArgumentParser
import BLAS
import Collectives
import MPI
import NN

/// `ddp info`: what the job looks like from inside (ranks, hosts, MPI and BLAS settings).
/// A quick check that a hostfile or Slurm allocation gives the layout you expect.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the MPI world (ranks per host), the MPI library and each rank's BLAS threads and kernels.")

    func run() throws {
        try MPIRuntime.withRuntime { level in
            let group = try MPIProcessGroup.world()
            let hosts = try gatherHostNames(group)
            let threads = try group.allGather([Int32(BLAS.threadCount)])
            let kernels = try gatherStrings("OpenBLAS \(BLAS.coreName), element-wise \(elementwiseKernelLevel)", group)
            guard group.rank == 0 else { return }
            print("world size: \(group.worldSize)   thread level: \(level)")
            print("MPI library: \(MPIRuntime.libraryVersion.split(separator: "\n").first ?? "")")
            for r in 0..<group.worldSize {
                print("rank \(r): host \(hosts[r]), OpenBLAS threads \(threads[r]), kernels: \(kernels[r])")
            }
        }
    }
}
