import ArgumentParser
import Foundation
import SwiftDDPSafeTensors
import SwiftDDPTraining
/// `ddp export CHECKPOINT --out FILE`: the model's state dict out of a training checkpoint, as
/// `ddp train --save` writes it (PyTorch's names, no `model.` prefix), so that PyTorch loads it
/// with `load_state_dict(strict=True)`. Needs no MPI: one process reads and writes a file.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a checkpoint's model as a state dict PyTorch loads (as train --save writes it).")

    @Argument(help: "A checkpoint written by ddp train --checkpoint-dir (checkpoint-STEP.safetensors).")
    var checkpoint: String

    @Option(help: "The state dict to write (safetensors).")
    var out: String

    func validate() throws {
        try checkWritable(out, option: "--out")
        let same = URL(fileURLWithPath: out).standardizedFileURL.resolvingSymlinksInPath()
            == URL(fileURLWithPath: checkpoint).standardizedFileURL.resolvingSymlinksInPath()
        if same { throw ValidationError("--out \(out) is the checkpoint itself; write the state dict elsewhere") }
    }

    func run() throws {
        let file: SafeTensors.File
        do {
            file = try SafeTensors.read(checkpoint)
        } catch {
            throw ValidationError("\(checkpoint): \(error)")
        }
        guard let state = try Checkpointer.modelState(in: file, path: checkpoint) else {
            throw ValidationError(
                "\(checkpoint) is not a SwiftDDP checkpoint (no \"format\": \"\(Checkpointer.format)\")")
        }
        var metadata = ["format": "pt"]
        if let config = file.metadata["config"] { metadata["swiftddp_config"] = config }
        try SafeTensors.write(state, metadata: metadata, to: out)
        print("ddp export: \(state.count) tensors from step \(file.metadata["step"] ?? "?") written to \(out)")
    }
}
