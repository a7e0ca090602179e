import Foundation
import Testing
@testable import SwiftDDPTestSupport
/// Every MPI binding, exercised for real: mpirun starts the mpi-selftest executable, which
/// checks values on each rank and prints "N passed, M failed".
@Suite("MPI bindings under mpirun", .serialized)
struct MPISelfTestTests {
    @Test("mpi-selftest passes", arguments: [(1, false), (2, false), (4, false), (4, true)])
    func selfTest(np: Int, smallCollectivesOverMPI: Bool) throws {
        // Small collectives go through shared memory on one host unless told to use MPI;
        // the checks expect whichever path the environment asks for.
        let outcome = try Executables.mpirun(np: np, "mpi-selftest",
                                             exporting: smallCollectivesOverMPI
                                                 ? ["SWIFTDDP_SMALL_COLLECTIVES=mpi"] : [],
                                             timeout: 180)
        #expect(!outcome.timedOut, "mpirun -np \(np) timed out:\n\(outcome.output)")
        #expect(outcome.status == 0, "mpirun -np \(np) exited \(outcome.status):\n\(outcome.output)")
        #expect(outcome.output.contains("world size \(np)"), "\(outcome.output)")
        // Each rank runs the same checks, so the total scales with the world size.
        let summary = outcome.output.split(separator: "\n").first {
            $0.hasPrefix("mpi-selftest:") && $0.contains("passed")
        }
        let passed = summary.flatMap { line in
            line.split(separator: " ").firstIndex(of: "passed,").flatMap { Int(line.split(separator: " ")[$0 - 1]) }
        }
        #expect(summary?.hasSuffix(" 0 failed") == true, "\(outcome.output)")
        #expect((passed ?? 0) >= 50 * np, "too few checks ran: \(summary ?? "no summary")")
    }
}
