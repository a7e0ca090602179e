import ArgumentParser
import BLAS
import Collectives
import MPI

/// `ddp info`: what the job looks like from inside (ranks, hosts, MPI and BLAS settings).
/// A quick check that a hostfile or Slurm allocation gives the layout you expect.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the MPI world (ranks per host), the MPI library and the BLAS thread count.")

    func run() throws {
        try MPIRuntime.withRuntime { level in
            let group = try MPIProcessGroup.world()
            // Host names travel as fixed-width byte rows so one all-gather suffices.
            let width = 64
            var row = [Int32](repeating: 0, count: width)
            for (i, byte) in group.hostName.utf8.prefix(width).enumerated() { row[i] = Int32(byte) }
            let rows = try group.allGather(row + [Int32(BLAS.threadCount)])
            guard group.rank == 0 else { return }
            print("world size: \(group.worldSize)   thread level: \(level)")
            print("MPI library: \(MPIRuntime.libraryVersion.split(separator: "\n").first ?? "")")
            for r in 0..<group.worldSize {
                let slice = rows[r * (width + 1)..<(r + 1) * (width + 1)]
                let name = String(decoding: slice.prefix(width).prefix { $0 != 0 }.map { UInt8($0) }, as: UTF8.self)
                print("rank \(r): host \(name), OpenBLAS threads \(slice.last!)")
            }
        }
    }
}
