import ArgumentParser

/// `ddp`: the SwiftDDP command. Run it under mpirun (scripts/launch.sh does that for you);
/// every rank runs the same command line.
@main
struct DDP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ddp",
        abstract: "Distributed data-parallel training with synchronized batch normalization, on MPI.",
        discussion: "Launch with scripts/launch.sh -np N -- SUBCOMMAND [options].",
        subcommands: [Info.self])
}
