import Foundation
import SwiftDDPTraining
/// `ddp plot`: one PNG of a `--metrics` file, drawn by gnuplot in four panels: the loss (each
/// logged step's and the interval mean), test accuracy per epoch, the learning rate, and either
/// the weight-gradient norm of each layer (when the file has diagnostics) or the throughput.
public enum MetricsPlot {
    public static func draw(metrics path: String, to output: String, title: String? = nil) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw TrainingError("cannot read metrics file \(path)")
        }
        var steps: [[String: Any]] = [], evals: [[String: Any]] = [], diagnostics: [[String: Any]] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw TrainingError("\(path):\(i + 1): not a JSON object (is this a --metrics file?)")
            }
            switch object["kind"] as? String {
            case "step": steps.append(object)
            case "eval" where object["statistics"] == nil: evals.append(object)
            case "diagnostics": diagnostics.append(object)
            default: break
            }
        }
        guard !steps.isEmpty else { throw TrainingError("\(path) has no step records (is this a --metrics file?)") }

        func number(_ record: [String: Any], _ key: String) -> String {
            guard let v = record[key] as? Double, v.isFinite else { return "NaN" }
            return String(v)
        }
        func block(_ name: String, _ rows: [String]) -> String {
            "$\(name) << EOD\n" + rows.joined(separator: "\n") + "\nEOD\n"
        }
        var gp = block("steps", steps.map { r in
            ["step", "loss", "mean_loss", "lr", "samples_per_second"].map { number(r, $0) }.joined(separator: " ")
        })
        gp += block("evals", evals.map { number($0, "epoch") + " " + number($0, "test_accuracy") })
        let layers = diagnostics.map { ($0["weight_grad_norm"] as? [Double])?.count ?? 0 }.max() ?? 0
        if layers > 0 {
            gp += block("grads", diagnostics.map { r in
                let norms = r["weight_grad_norm"] as? [Double] ?? []
                let columns = (0..<layers).map { $0 < norms.count && norms[$0] > 0 ? String(norms[$0]) : "NaN" }
                return ([number(r, "step")] + columns).joined(separator: " ")
            })
        }
        let partial = output + ".partial.png"
        gp += """
            set terminal pngcairo size 1200,800 font 'sans,10'
            set output '\(partial.replacingOccurrences(of: "'", with: "''"))'
            set datafile missing 'NaN'
            set grid
            set multiplot layout 2,2 title "\((title ?? path).replacingOccurrences(of: "\"", with: "'"))"
            set title 'training loss'; set xlabel 'step'; set key top right
            plot $steps using 1:2 with lines lc rgb '#bbbbbb' title 'at the logged step', \\
                 $steps using 1:3 with lines lw 2 lc rgb '#1f77b4' title 'mean over the interval'
            set title 'test accuracy'; set xlabel 'epoch'; set key off; set format y '%.1f%%'\(
                evals.count <= 20 ? "; set xtics 1" : "")
            \(evals.isEmpty ? "set label 1 'no evaluations (--no-eval)' at graph 0.3,0.5\nplot 2 notitle lc rgb 'white'"
                : "plot $evals using 1:($2*100) with linespoints lw 2 pt 7")
            unset label 1; set format y '%g'; set xtics autofreq
            set title 'learning rate'; set xlabel 'step'
            plot $steps using 1:4 with lines lw 2

            """
        if layers > 0 {
            gp += """
                set title 'weight-gradient norm per layer'; set logscale y; set key outside right
                plot for [i=2:\(layers + 1)] $grads using 1:i with linespoints title sprintf('layer %d', i-1)

                """
        } else {
            gp += "set title 'throughput (samples/s, all ranks)'\nplot $steps using 1:5 with lines lw 2\n"
        }
        gp += "unset multiplot\n"

        let script = FileManager.default.temporaryDirectory.appendingPathComponent("ddp-plot-\(getpid()).gp").path
        defer {
            try? FileManager.default.removeItem(atPath: script)
            try? FileManager.default.removeItem(atPath: partial)
        }
        do { try gp.write(toFile: script, atomically: true, encoding: .utf8) } catch {
            throw TrainingError("cannot write the gnuplot script \(script)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["gnuplot", script]
        let errors = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        do { try process.run() } catch { throw TrainingError("cannot run gnuplot (apt-get install gnuplot-nox)") }
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0, FileManager.default.fileExists(atPath: partial) else {
            let why = process.terminationStatus == 127 ? "gnuplot is not installed (apt-get install gnuplot-nox)"
                : "gnuplot failed: "
                    + (message.split(separator: "\n").last.map(String.init) ?? "status \(process.terminationStatus)")
            throw TrainingError(why)
        }
        // A finished figure or none: the PNG appears under its name only once complete.
        guard rename(partial, output) == 0 else { throw TrainingError("cannot write \(output)") }
    }
}
