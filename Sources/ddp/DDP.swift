import ArgumentParser
import Foundation
import SwiftDDPNN
/// `ddp`: the SwiftDDP command. Run it under mpirun (scripts/launch.sh does that for you);
/// every rank runs the same command line, and rank 0 does the talking.
@main
struct DDP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ddp",
        abstract: "Distributed data-parallel training with synchronized batch normalization, on MPI.",
        discussion: "Launch with scripts/launch.sh -np N -- SUBCOMMAND [options].",
        subcommands: [Train.self, StudyCommand.self, Bench.self, Info.self, Export.self, Plot.self])

    /// Parses and runs; a usage error is printed by the first rank only, so N ranks do not
    /// print it N times, and every rank exits with the same non-zero status.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            // A library check that escaped a command's own reporting: named in flags all the same.
            let error = error is ConfigurationError ? ReportedError(OptionNames.describe(error)) : error
            if Launch.rank == 0 { exit(withError: error) }
            // Rank 0 prints the message. mpirun aborts the job at the first non-zero exit, so the
            // other ranks wait a moment: exiting at once could kill rank 0 before it has printed.
            Thread.sleep(forTimeInterval: 1)
            Foundation.exit(exitCode(for: error).rawValue)
        }
    }
}

/// An error already worded for the user (exits 1, as the error it stands for).
struct ReportedError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// What mpirun tells a process about its place in the job, readable before MPI starts.
enum Launch {
    static var rank: Int {
        let env = ProcessInfo.processInfo.environment
        return Int(env["OMPI_COMM_WORLD_RANK"] ?? env["PMI_RANK"] ?? env["PMIX_RANK"] ?? "0") ?? 0
    }

    /// Whether the user's stdout is a terminal. Under mpirun a rank's stdout is a pseudo-terminal
    /// even when mpirun's own output goes to a file, so scripts/launch.sh passes the answer in
    /// DDP_STDOUT_TTY; without it, ask the file descriptor.
    static var stdoutIsTerminal: Bool {
        if let forwarded = ProcessInfo.processInfo.environment["DDP_STDOUT_TTY"] { return forwarded == "1" }
        if ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] != nil { return false }
        return isatty(STDOUT_FILENO) != 0
    }
}
