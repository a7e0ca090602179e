import Foundation
/// Figures drawn by gnuplot (Debian's gnuplot-nox, pngcairo terminal). Each figure keeps its
/// data (`NAME.tsv`) and script (`NAME.gp`) beside the PNG, so it can be re-drawn or restyled.
struct Figure {
    var name: String
    var title: String
    var xLabel: String
    var yLabel: String
    var logY = false
    var logX = false
    /// Column names after the x column.
    var series: [String]
    /// Rows: x followed by one value per series (nil: missing).
    var rows: [[Double?]]
    var style = "linespoints"

    /// Writes data, script and PNG into `directory`; returns the PNG's file name, or nil if
    /// gnuplot is unavailable or failed (the data and script are still written).
    func draw(in directory: String) -> String? {
        let data = directory + "/\(name).tsv", script = directory + "/\(name).gp", png = "\(name).png"
        var tsv = "x\t" + series.map { "\"\($0)\"" }.joined(separator: "\t") + "\n"
        for row in rows {
            tsv += row.map { v in v.map { $0.isFinite ? String($0) : "NaN" } ?? "NaN" }.joined(separator: "\t") + "\n"
        }
        var gp = """
            set terminal pngcairo size 900,560 font 'sans,10'
            set output '\(directory)/\(png)'
            set title "\(title)"
            set xlabel "\(xLabel)"
            set ylabel "\(yLabel)"
            set key outside right top
            set grid
            set datafile missing 'NaN'

            """
        if logY { gp += "set logscale y\nset format y '10^{%L}'\n" }
        if logX { gp += "set logscale x 2\n" }
        gp += "plot for [i=2:\(series.count + 1)] '\(data)' using 1:i with \(style) title columnheader(i)\n"
        do {
            try tsv.write(toFile: data, atomically: true, encoding: .utf8)
            try gp.write(toFile: script, atomically: true, encoding: .utf8)
        } catch {
            return nil
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["gnuplot", script]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        process.waitUntilExit()
        return process.terminationStatus == 0 && FileManager.default.fileExists(atPath: directory + "/" + png)
            ? png : nil
    }
}

/// Markdown helpers.
enum Markdown {
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        var out = "| " + header.joined(separator: " | ") + " |\n"
        out += "|" + header.map { _ in " --- |" }.joined() + "\n"
        for row in rows { out += "| " + row.joined(separator: " | ") + " |\n" }
        return out
    }

    static func number(_ v: Double?, _ format: String = "%.3g") -> String {
        guard let v else { return "—" }
        return v.isFinite ? String(format: format, v) : "NaN"
    }

    static func percent(_ v: Double) -> String { v.isFinite ? String(format: "%.2f%%", v * 100) : "NaN" }

    /// Test accuracy, with ± its standard deviation in percentage points over several seeds.
    static func accuracy(_ r: RunResult) -> String {
        guard let std = r.testAccuracyStd, r.seeds > 1 else { return percent(r.testAccuracy) }
        return percent(r.testAccuracy) + String(format: " ± %.2f", std * 100)
    }

    /// Test error (1 − accuracy) in percent, ± its standard deviation over seeds when there are several.
    static func error(_ accuracy: Double?, std: Double?, seeds: Int) -> String {
        guard let accuracy, accuracy.isFinite else { return "–" }
        let text = percent(1 - accuracy)
        guard let std, seeds > 1 else { return text }
        return text + String(format: " ± %.2f", std * 100)
    }

    /// The test error of a result over its seeds, naming how many when some diverged.
    static func error(of r: RunResult) -> String {
        let averaged = r.seeds - (r.divergedSeeds ?? 0)
        let text = error(r.testAccuracy, std: averaged > 1 ? r.testAccuracyStd : nil, seeds: averaged)
        return averaged < r.seeds && averaged > 0 && text != "–" ? text + " (\(averaged) of \(r.seeds) seeds)" : text
    }

    /// "yes", "no", or how many seeds diverged.
    static func diverged(_ r: RunResult) -> String {
        guard r.diverged else { return "no" }
        guard let d = r.divergedSeeds, r.seeds > 1, d < r.seeds else { return "yes" }
        return "\(d) of \(r.seeds) seeds"
    }

    static func figure(_ file: String?, _ caption: String) -> String {
        guard let file else { return "*(figure \(caption) not drawn: gnuplot unavailable)*\n" }
        return "![\(caption)](figures/\(file))\n"
    }
}
