// ddp-alloc-check: counts heap allocations (malloc, calloc, realloc, posix_memalign, …) made
// by the whole process during steady-state training steps, with ordo-one's malloc interposer.
// Run it under mpirun with the interposer preloaded:
//   mpirun -np 2 -x LD_PRELOAD=.build/release/libMallocInterposerSwift.so .build/release/ddp-alloc-check
// Options: --model mlp|cnn|resnet, --norm, --grad-sync, --batch, --warmup, --steps, --local (--help).
// Prints one JSON line per rank and exits 1 if any step allocated; a bad option exits 64.
import SwiftDDPCollectives
import SwiftDDPDatasets
import Foundation
import MallocInterposerSwift
import SwiftDDPMPI
import SwiftDDPNN
import SwiftDDPTraining
let usage = """
    usage: ddp-alloc-check [--model mlp|cnn|resnet] [--norm NORM] [--grad-sync MODE] [--batch N] [--warmup N]
                           [--steps N] [--local]
    Counts heap allocations per steady-state training step (preload libMallocInterposerSwift.so); one JSON line
    per rank; exit 1 if any step allocated.
    """
/// Bad options: one line and the option parser's status, before MPI starts.
func refuse(_ message: String) -> Never {
    FileHandle.standardError.write(Data("ddp-alloc-check: \(message)\n\(usage)\n".utf8))
    exit(64)
}
/// The options' values by name, and whether --local was given.
func parseArguments() -> (values: [String: String], local: Bool) {
    let valued: Set = ["--model", "--norm", "--grad-sync", "--batch", "--warmup", "--steps"]
    var values: [String: String] = [:], local = false
    var rest = CommandLine.arguments.dropFirst()
    while let name = rest.popFirst() {
        if name == "--help" || name == "-h" {
            print(usage)
            exit(0)
        } else if name == "--local" {
            local = true
        } else if valued.contains(name) {
            guard let value = rest.popFirst() else { refuse("\(name) needs a value") }
            values[name] = value
        } else {
            refuse("unknown option \(name)")
        }
    }
    return (values, local)
}
let (values, local) = parseArguments()
func parsed<T>(_ name: String, _ fallback: T, _ make: (String) -> T?) -> T {
    guard let text = values[name] else { return fallback }
    guard let value = make(text) else { refuse("\(name) \(text) is not valid") }
    return value
}
let norm = parsed("--norm", NormKind.syncbn) { NormKind(rawValue: $0) }
let gradSync = parsed("--grad-sync", GradientSyncMode.sharded) { GradientSyncMode(rawValue: $0) }
let architecture = parsed("--model", Architecture.mlp) { Architecture(rawValue: $0) }
let batch = parsed("--batch", architecture == .mlp ? 128 : 16) { Int($0).flatMap { $0 > 0 ? $0 : nil } }
let warmup = parsed("--warmup", 20) { Int($0).flatMap { $0 >= 1 ? $0 : nil } }
let steps = parsed("--steps", 50) { Int($0).flatMap { $0 > 0 ? $0 : nil } }

do {
    try MPIRuntime.initialize()
    // --local: one rank through the in-process group, to tell SwiftDDP's allocations from MPI's
    let group: any ProcessGroup = local ? LocalProcessGroup.single() : try MPIProcessGroup.world()
    // one epoch holds every step, so the window sees no epoch boundary (a new permutation)
    let data = try SyntheticData.make(count: (warmup + steps + 2) * batch * group.worldSize, features: 784, seed: 1)
    var config = TrainingConfiguration()
    // conv nets at their default sizes (ResNet-20); the MLP as the benchmark's, 784-512x4-10
    config.model = architecture == .mlp ? ModelConfiguration(depth: 4, width: 512, norm: norm)
        : ModelConfiguration(architecture: architecture, norm: norm)
    config.batchSize = batch
    config.epochs = 100
    config.maxSteps = warmup + steps + 1  // the last step logs; it stays outside the window
    config.evaluate = false
    config.logEvery = Int.max / 2
    config.gradSync = gradSync
    let trainer = try Trainer(config: config, group: group, train: data, test: data)

    // Is the interposer loaded? A known allocation must be counted.
    MallocInterposerSwift.reset()
    MallocInterposerSwift.hook()
    let probe = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 16)
    MallocInterposerSwift.unhook()
    probe.deallocate()
    let interposed = MallocInterposerSwift.getStatistics().mallocCount > 0

    trainer.observers.append(PhaseObserver(after: .update) { step in
        if step.number == warmup {
            MallocInterposerSwift.reset()
            MallocInterposerSwift.hook()
        } else if step.number == warmup + steps {
            MallocInterposerSwift.unhook()
        }
    })
    _ = try trainer.run()
    let stats = MallocInterposerSwift.getStatistics()
    let arena = Conv2d.arenaStatistics
    let line: [String: Any] = [
        "rank": group.rank, "world_size": group.worldSize, "model": architecture.rawValue, "norm": norm.rawValue,
        "grad_sync": gradSync.rawValue,
        "interposer_loaded": interposed, "measured_steps": steps,
        "mallocs": stats.mallocCount, "malloc_bytes": stats.mallocBytesCount, "frees": stats.freeCount,
        "mallocs_per_step": Double(stats.mallocCount) / Double(steps),
        "onednn_arena": ["served": arena.served, "fallbacks": arena.fallbacks, "outlived": arena.outlived],
    ]
    print(String(decoding: try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]), as: UTF8.self))
    try MPIRuntime.finalize()
    exit(interposed && stats.mallocCount == 0 ? 0 : 1)
} catch {
    FileHandle.standardError.write(Data("ddp-alloc-check: \(error)\n".utf8))
    MPIRuntime.abort(exitCode: 2)
}
