import ArgumentParser
import SwiftDDPCollectives
import Foundation
import SwiftDDPMPI
import SwiftDDPTraining
/// Runs a subcommand's work as an MPI job with SwiftDDP's failure rules:
///
/// - set-up (reading options, data, files) runs on every rank, then the ranks agree: if any
///   failed, the lowest failing rank prints its one-line error and every rank exits 1 cleanly;
/// - a failure after that (mid-training) on any rank prints the error with the rank and ends
///   the whole job at once with `MPI_Abort`, so no rank waits forever in a collective;
/// - an error every rank reached together (`TrainingError.agreed`, e.g. non-finite loss or
///   configurations that differ) is printed once by rank 0 and every rank exits 1 cleanly.
///
/// `setUp` must not communicate (a rank failing in it would leave the others waiting).
enum Job {
    static func run<State>(setUp: (MPIProcessGroup) throws -> State, work: (MPIProcessGroup, State) throws -> Void)
        throws
    {
        let group: MPIProcessGroup
        do {
            try MPIRuntime.initialize(required: .funneled)
            group = try MPIProcessGroup.world()
        } catch {
            printError("cannot start MPI: \(error)")
            throw ExitCode(3)
        }
        let prepared: Result<State, any Error> = Result { try setUp(group) }
        var failed = [Int32(0)]
        if case .failure = prepared { failed[0] = Int32(group.rank + 1) }
        // Lowest failing rank + 1 via min over (failed ? rank+1 : Int32.max).
        var lowest = [failed[0] == 0 ? Int32.max : failed[0]]
        do { try group.allReduce(&lowest, op: .min) } catch {
            printError("rank \(group.rank): \(error)")
            MPIRuntime.abort(exitCode: 3)
        }
        switch prepared {
        case .failure(let error):
            if Int32(group.rank + 1) == lowest[0] { printError(message(error)) }
            try? MPIRuntime.finalize()
            throw ExitCode.failure
        case .success(let state):
            if lowest[0] != Int32.max {
                try? MPIRuntime.finalize()
                throw ExitCode.failure
            }
            do {
                try work(group, state)
            } catch let error as TrainingError where error.agreed {
                if group.rank == 0 { printError(error.message) }
                try? MPIRuntime.finalize()
                throw ExitCode.failure
            } catch {
                printError(group.worldSize > 1 ? "rank \(group.rank): \(message(error))" : message(error))
                if group.worldSize > 1 { MPIRuntime.abort(exitCode: 1) }
                try? MPIRuntime.finalize()
                throw ExitCode.failure
            }
            try? MPIRuntime.finalize()
        }
    }

    /// The error's line, a `ConfigurationError` in flags.
    static func message(_ error: any Error) -> String { OptionNames.describe(error) }

    static func printError(_ text: String) {
        FileHandle.standardError.write(Data("ddp: error: \(text)\n".utf8))
    }
}
