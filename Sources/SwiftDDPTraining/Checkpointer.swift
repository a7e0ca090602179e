import SwiftDDPCollectives
import Foundation
import SwiftDDPNN
import SwiftDDPSafeTensors
/// Training checkpoints: everything needed to continue bit-for-bit — model state, optimizer
/// state, position in the data (epoch, batch), every rank's dropout generator, and the
/// configuration — in one safetensors file per checkpoint, `checkpoint-STEP.safetensors`.
///
/// Tensors: `model.<state-dict key>`, `optimizer.<state key>` (whole, also in sharded mode: the
/// host's shared copy), `trainer.dropout_rng` (I64 [world size, 4 × dropout layers], for models
/// run without the trainer's per-sample keys). Metadata: `format` = `swiftddp-checkpoint`,
/// `config`, `world_size`, `step`, `epoch`, `position` (per rank), `global_position` (samples of
/// the epoch consumed by all ranks: what a job on another number of ranks resumes from), and
/// `checksum` (FNV-1a 64 over every tensor's
/// name, dtype, shape and bytes and the other metadata).
///
/// Writing is atomic (temporary file, fsync, rename, directory fsync): the previous checkpoint
/// stays until the new one is complete, and the `keep` newest of this job's are kept: a job
/// deletes only checkpoints it wrote or resumed from, never another job's. A checkpoint is never
/// written with non-finite parameters. Resuming takes the newest checkpoint that validates and
/// warns about each newer one that does not.
public final class Checkpointer {
    public let directory: String
    public let every: Int
    public let keep: Int
    public static let format = "swiftddp-checkpoint"
    /// Steps of the checkpoints this job owns in `directory`: written by it, or adopted when it
    /// resumed; only these are ever pruned.
    private var owned: [Int] = []

    public init(directory: String, every: Int, keep: Int = 2) throws {
        guard every >= 1 else { throw TrainingError("--checkpoint-every must be at least 1, got \(every)") }
        self.directory = directory
        self.every = every
        self.keep = max(1, keep)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw TrainingError("cannot create checkpoint directory \(directory): \(error.localizedDescription)")
        }
    }

    public func path(step: Int) -> String { directory + String(format: "/checkpoint-%08d.safetensors", step) }

    /// Saves a checkpoint (collective: every rank contributes its dropout generator state).
    public func save(_ trainer: Trainer, at point: ResumePoint) throws {
        let group = trainer.group
        let rng = try group.allGather(Checkpointer.dropoutState(trainer.model))
        guard allFinite(trainer.model.store.parameters) else {
            throw TrainingError("parameters are not finite at step \(point.step); refusing to write a checkpoint")
        }
        guard group.rank == 0 else { return }
        var tensors: [String: TensorData] = [:]
        for (k, v) in trainer.model.stateDict() { tensors["model." + k] = v }
        for (k, v) in trainer.optimizer.stateDict() { tensors["optimizer." + k] = v }
        if !rng.isEmpty {
            tensors["trainer.dropout_rng"] = TensorData(
                int64s: rng, shape: [group.worldSize, rng.count / group.worldSize])
        }
        var metadata = ["format": Checkpointer.format, "config": Checkpointer.resumeFingerprintJSON(trainer.config),
                        "world_size": String(group.worldSize), "step": String(point.step),
                        "epoch": String(point.epoch), "position": String(point.position),
                        // the data position on any number of ranks: samples of the epoch consumed by all
                        "global_position": String(point.position * group.worldSize)]
        metadata["checksum"] = Checkpointer.checksum(tensors, metadata)
        try SafeTensors.write(tensors, metadata: metadata, to: path(step: point.step))
        if !owned.contains(point.step) { owned.append(point.step) }
        prune()
    }

    /// Takes the checkpoints of the directory that belong to `trainer`'s job (intact, same ranks
    /// and configuration) as its own, after resuming from them; others' stay untouched. Rank 0,
    /// which writes and prunes, reads them.
    public func adoptExisting(for trainer: Trainer) {
        guard trainer.group.rank == 0 else { return }
        let mine = Checkpointer.checkpointSteps(in: directory).filter {
            (try? Checkpointer.load(path(step: $0), for: trainer)) != nil
        }
        owned = Array(Set(owned + mine))
    }

    /// Deletes all but the `keep` newest of this job's checkpoints.
    private func prune() {
        owned.sort(by: >)
        for step in owned.dropFirst(keep) { try? FileManager.default.removeItem(atPath: path(step: step)) }
        owned = Array(owned.prefix(keep))
    }

    /// Refuses to start a job that writes checkpoints into a directory holding others (which it
    /// would prune, or which would make `--resume` pick the wrong job later), unless it resumes
    /// them or was told to replace them; with `overwrite`, removes them (rank 0).
    public static func claim(directory: String, resume: Bool, overwrite: Bool, isRoot: Bool) throws {
        let existing = checkpointSteps(in: directory)
        guard !resume, !existing.isEmpty else { return }
        guard overwrite else {
            let steps = existing.count > 3 ? "\(existing.count) checkpoints, the newest at step \(existing[0])"
                : "steps " + existing.reversed().map(String.init).joined(separator: ", ")
            throw TrainingError("--checkpoint-dir \(directory) holds another job's checkpoints (\(steps)); "
                                + "use --resume to continue it, another --checkpoint-dir, or --overwrite-checkpoints "
                                + "to delete them")
        }
        if isRoot {
            for step in existing {
                try? FileManager.default.removeItem(
                    atPath: directory + String(format: "/checkpoint-%08d.safetensors", step))
            }
        }
    }

    /// Checkpoint steps found in `directory`, newest first.
    static func checkpointSteps(in directory: String) -> [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { name -> Int? in
            guard name.hasPrefix("checkpoint-"), name.hasSuffix(".safetensors") else { return nil }
            return Int(name.dropFirst("checkpoint-".count).dropLast(".safetensors".count))
        }.sorted(by: >)
    }

    /// Loads and fully validates one checkpoint file for `trainer`. A checkpoint of another
    /// number of ranks W₀ continues the same run when the global batch is the same (the per-rank
    /// batch is then B₀·W₀/W) and nothing depends on which rank a sample lands on: SyncBN over
    /// all ranks or no BatchNorm (local BN only with `allowBatchNormRegroup`); dropout's masks
    /// are keyed by sample. The data position, counted per rank, is rescaled.
    static func load(_ path: String, for trainer: Trainer) throws -> (SafeTensors.File, ResumePoint) {
        let file = try SafeTensors.read(path)
        try verify(file, path: path)
        let W = trainer.group.worldSize
        guard let saved = file.metadata["world_size"].flatMap(Int.init), saved > 0 else {
            throw TrainingError("\(path): missing world_size")
        }
        let ours = resumeFingerprintJSON(trainer.config)
        let recorded = file.metadata["config"] ?? ""
        let theirs = saved == W ? recorded : regrouped(recorded, from: saved, to: W)
        guard theirs == ours else {
            if saved != W, let global = globalBatch(file.metadata["config"] ?? "", ranks: saved),
               global != trainer.config.batchSize * W {
                throw Mismatch(message: "\(path) was written by \(saved) ranks with a global batch of \(global); "
                               + "this job's is \(W) × \(trainer.config.batchSize) = "
                               + "\(trainer.config.batchSize * W) (--global-batch-size \(global) keeps it)")
            }
            let differences = configurationDifferences(checkpoint: theirs, job: ours)
            throw Mismatch(message: "\(path) was written with a different configuration"
                           + (differences.isEmpty ? "" : ": " + differences.joined(separator: "; ")))
        }
        guard let step = file.metadata["step"].flatMap(Int.init), let epoch = file.metadata["epoch"].flatMap(Int.init),
              let position = file.metadata["position"].flatMap(Int.init)
        else { throw TrainingError("\(path): missing step, epoch or position") }
        guard saved != W else { return (file, ResumePoint(step: step, epoch: epoch, position: position)) }
        let config = trainer.config
        let regroupsBatchNorm = config.model.norm == .bn
            || (config.model.norm == .syncbn && config.syncBNGroupSize.map { $0 < max(saved, W) } == true)
        if regroupsBatchNorm && !trainer.allowBatchNormRegroup {
            let kind = config.model.norm == .bn ? "local BatchNorm" : "SyncBN groups"
            throw Mismatch(message: "\(path) was written by \(saved) ranks; with \(kind) the statistics of each batch "
                           + "would cover other samples on \(W) (--allow-bn-regroup accepts that)")
        }
        let global = file.metadata["global_position"].flatMap(Int.init) ?? position * saved
        guard global % W == 0 else {
            throw Mismatch(message: "\(path): its data position (\(global) samples of the epoch) does not split "
                           + "over \(W) ranks")
        }
        var point = ResumePoint(step: step, epoch: epoch, position: global / W)
        point.writtenByRanks = saved
        return (file, point)
    }

    /// The checkpoint's configuration (JSON) as it reads on `ranks` ranks with the same global batch.
    private static func regrouped(_ json: String, from saved: Int, to ranks: Int) -> String {
        guard var c = try? JSONDecoder().decode(TrainingConfiguration.self, from: Data(json.utf8)),
              (c.batchSize * saved) % ranks == 0 else { return json }
        c.batchSize = c.batchSize * saved / ranks
        return c.json
    }

    private static func globalBatch(_ json: String, ranks: Int) -> Int? {
        (try? JSONDecoder().decode(TrainingConfiguration.self, from: Data(json.utf8))).map { $0.batchSize * ranks }
    }

    /// The model's state dict held in a checkpoint file (its `model.` tensors), after checking
    /// the checksum; nil when `file` is not a SwiftDDP checkpoint (e.g. a plain state dict).
    /// Lets `--init-from` start a new job from another job's checkpoint.
    public static func modelState(in file: SafeTensors.File, path: String) throws -> [String: TensorData]? {
        guard file.metadata["format"] == format else { return nil }
        try verify(file, path: path)
        return part(of: file, "model.")
    }

    /// The tensors of `file` whose names start with `prefix`, under their names without it.
    private static func part(of file: SafeTensors.File, _ prefix: String) -> [String: TensorData] {
        file.tensors.reduce(into: [:]) { part, entry in
            if entry.key.hasPrefix(prefix) { part[String(entry.key.dropFirst(prefix.count))] = entry.value }
        }
    }

    /// Throws unless `file` is an intact SwiftDDP checkpoint.
    private static func verify(_ file: SafeTensors.File, path: String) throws {
        guard file.metadata["format"] == format else { throw TrainingError("\(path) is not a SwiftDDP checkpoint") }
        guard file.metadata["checksum"] == checksum(file.tensors, file.metadata.filter { $0.key != "checksum" }) else {
            throw TrainingError("\(path): checksum mismatch (the file is corrupt)")
        }
    }

    /// A checkpoint that is intact but belongs to another job (world size or configuration).
    struct Mismatch: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    /// Restores the newest valid checkpoint of `directory` into `trainer` (collective). Rank 0
    /// chooses; every rank loads the chosen file. Returns nil when there is none. Corrupt files
    /// are skipped with a warning; if every checkpoint there is intact but from another job
    /// (other options or rank count), it throws instead of starting over, because training
    /// from step 0 would soon write over that job's checkpoints.
    public static func resume(_ trainer: Trainer, from directory: String,
                              warn: (String) -> Void) throws -> ResumePoint? {
        let group = trainer.group
        let noneValid: Int64 = -1, onlyOtherJobs: Int64 = -2
        var chosen: [Int64] = [noneValid]
        var mismatch: Mismatch? = nil
        if group.rank == 0 {
            for step in checkpointSteps(in: directory) {
                let p = directory + String(format: "/checkpoint-%08d.safetensors", step)
                do {
                    _ = try load(p, for: trainer)
                    chosen[0] = Int64(step)
                    break
                } catch let error as Mismatch {
                    mismatch = mismatch ?? error
                } catch {
                    warn("warning: skipping checkpoint \(p): \(error)")
                }
            }
            if chosen[0] == noneValid && mismatch != nil { chosen[0] = onlyOtherJobs }
        }
        try group.broadcast(&chosen, root: 0)
        if chosen[0] == onlyOtherJobs {
            throw TrainingError(
                "--resume: no checkpoint in \(directory) belongs to this job "
                    + "(\(mismatch?.message ?? "another job's")); "
                    + "resume with the same options (on any number of ranks with the same global batch), start a new "
                    + "job from one with --init-from (the model only), or use another --checkpoint-dir",
                agreed: true)
        }
        guard chosen[0] >= 0 else { return nil }
        let (file, point) = try load(directory + String(format: "/checkpoint-%08d.safetensors", Int(chosen[0])),
                                     for: trainer)
        try trainer.model.loadStateDict(part(of: file, "model."))
        try trainer.optimizer.loadStateDict(part(of: file, "optimizer."))
        if let rng = file.tensors["trainer.dropout_rng"], file.metadata["world_size"] == String(group.worldSize) {
            let all = try rng.int64s()
            let width = rng.shape.count == 2 ? rng.shape[1] : 0
            try restoreDropoutState(trainer.model, Array(all[group.rank * width..<(group.rank + 1) * width]))
        }
        // With `--grad-sync sharded` the ranks of a host loaded into one shared copy of the
        // parameters and optimizer state (the same values): nobody trains until all are done.
        try group.barrier()
        return point
    }

    static func dropoutState(_ model: Model) -> [Int64] {
        model.leaves.compactMap { $0 as? Dropout }.flatMap { d -> [Int64] in
            let s = d.generator.state
            return [s.0, s.1, s.2, s.3].map { Int64(bitPattern: $0) }
        }
    }

    static func restoreDropoutState(_ model: Model, _ state: [Int64]) throws {
        let layers = model.leaves.compactMap { $0 as? Dropout }
        guard state.count == 4 * layers.count else {
            throw TrainingError("checkpoint dropout state does not match the model")
        }
        for (i, d) in layers.enumerated() {
            let s = state[4 * i..<4 * i + 4].map { UInt64(bitPattern: $0) }
            d.generator = SeededGenerator(state: (s[0], s[1], s[2], s[3]))
        }
    }

    /// The options two configurations (JSON, as checkpoints store them) differ in, each as
    /// "--lr 0.2 (checkpoint: 0.05)" by its command-line name; settings without a flag of their
    /// own by their field name.
    static func configurationDifferences(checkpoint: String, job: String) -> [String] {
        let decoder = JSONDecoder()
        guard let theirs = try? decoder.decode(TrainingConfiguration.self, from: Data(checkpoint.utf8)),
              let ours = try? decoder.decode(TrainingConfiguration.self, from: Data(job.utf8))
        else { return [] }
        typealias Field = (flag: String, value: (TrainingConfiguration) -> String)
        func flag(_ on: Bool) -> String { on ? "given" : "not given" }
        let fields: [Field] = [
            ("--model", { $0.model.architecture.rawValue }), ("--depth", { "\($0.model.depth)" }),
            ("--width", { "\($0.model.width)" }), ("--activation", { $0.model.activation }),
            ("--norm", { $0.model.norm.rawValue }), ("--groups", { "\($0.model.groups)" }),
            ("--init", { $0.model.initialization }), ("--dropout", { "\($0.model.dropout)" }),
            ("input shape", { "\($0.model.inputShape)" }), ("classes", { "\($0.model.classes)" }),
            ("--augment", { flag($0.augment) }), ("--batch-size", { "\($0.batchSize)" }),
            ("--optimizer", { $0.optimizer.rawValue }), ("--lr", { "\($0.learningRate)" }),
            ("--momentum", { "\($0.momentum)" }), ("dampening", { "\($0.dampening)" }),
            ("--nesterov", { flag($0.nesterov) }), ("--weight-decay", { "\($0.weightDecay)" }),
            ("--schedule", { $0.schedule.rawValue }), ("--warmup-steps", { "\($0.warmupSteps)" }),
            ("--step-size", { "\($0.stepSize)" }), ("--gamma", { "\($0.gamma)" }), ("--seed", { "\($0.seed)" }),
            ("--no-shuffle", { flag(!$0.shuffle) }), ("--drop-last", { flag($0.dropLast) }),
            ("--grad-sync", { $0.gradSync.rawValue }), ("--bucket-mb", { "\(Double($0.bucketBytes) / 1_048_576)" }),
            ("--syncbn-group-size", { $0.syncBNGroupSize.map(String.init) ?? "all ranks" }),
            ("--no-broadcast-buffers", { flag(!$0.broadcastBuffers) }),
            ("--data", { $0.dataDirectory ?? "synthetic" }),
            ("--synthetic-train", { "\($0.syntheticTrainCount)" }),
            ("--synthetic-test", { "\($0.syntheticTestCount)" }),
        ]
        var differences = fields.compactMap { field -> String? in
            let a = field.value(theirs), b = field.value(ours)
            return a == b ? nil : "\(field.flag) \(b) (checkpoint: \(a))"
        }
        if differences.isEmpty { differences = ["settings without an option of their own"] }
        return differences
    }

    /// The configuration without the fields that may change between a run and its resumption
    /// (length of training, logging, evaluation, diagnostics, precise BN at the end).
    static func resumeFingerprintJSON(_ config: TrainingConfiguration) -> String {
        var c = config
        c.epochs = 0
        c.maxSteps = nil
        c.logEvery = 1
        c.evaluate = true
        c.preciseBNSamples = nil
        c.diagnosticsEvery = nil
        c.covariateShift = false
        return c.json
    }

    static func checksum(_ tensors: [String: TensorData], _ metadata: [String: String]) -> String {
        var hash = FNV1a()
        func mix<S: Sequence>(_ bytes: S) where S.Element == UInt8 { hash.combine(bytes) }
        for name in tensors.keys.sorted() {
            let t = tensors[name]!
            mix(name.utf8); mix(t.dtype.rawValue.utf8); mix(t.shape.description.utf8); mix(t.bytes)
        }
        for key in metadata.keys.sorted() where key != "checksum" { mix(key.utf8); mix(metadata[key]!.utf8) }
        return String(hash.value, radix: 16)
    }
}
