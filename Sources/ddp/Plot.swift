import ArgumentParser
import Foundation
import SwiftDDPStudy
import SwiftDDPTraining
/// `ddp plot METRICS.jsonl [--out FILE.png]`: the curves of a `ddp train --metrics` file, drawn
/// by gnuplot. Needs no MPI.
struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw a --metrics file with gnuplot: loss, test accuracy, learning rate, and gradient norms "
            + "per layer (with --diagnostics-every) or throughput.")

    @Argument(help: "A metrics file written by ddp train --metrics.")
    var metrics: String

    @Option(help: ArgumentHelp("The PNG to write (default: the metrics file's name with .png).", valueName: "file.png"))
    var out: String?

    @Option(help: "The figure's title (default: the metrics file's path).")
    var title: String?

    var output: String {
        out ?? (metrics.hasSuffix(".jsonl") ? String(metrics.dropLast(6)) : metrics) + ".png"
    }

    func validate() throws {
        if !output.hasSuffix(".png") { throw ValidationError("--out must name a .png file, got \(output)") }
        try checkWritable(output, option: "--out")
    }

    func run() throws {
        do {
            try MetricsPlot.draw(metrics: metrics, to: output, title: title)
        } catch let error as TrainingError {
            Job.printError(error.message)
            throw ExitCode.failure
        }
        print("ddp plot: \(output)")
    }
}
