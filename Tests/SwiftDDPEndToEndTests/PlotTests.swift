import Foundation
import Testing
@testable import SwiftDDPTestSupport
/// `ddp plot`: no MPI, one process; gnuplot comes with scripts/setup.sh (gnuplot-nox).
@Suite("ddp plot")
struct PlotTests {
    static let gnuplotMissing = !["/usr/bin/gnuplot", "/usr/local/bin/gnuplot"].contains {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    @Test("a metrics file with diagnostics becomes one PNG, named after it, with nothing left beside it",
          .enabled(if: !gnuplotMissing, "gnuplot is not installed (scripts/setup.sh installs gnuplot-nox)"))
    func drawsPNG() throws {
        let dir = TemporaryDirectory()
        let metrics = dir.path + "/run.jsonl"
        let train = try Executables.run(Executables.path("ddp"), [
            "train", "--synthetic", "--synthetic-train", "256", "--width", "16", "--depth", "3", "--batch-size", "32",
            "--epochs", "2", "--log-every", "2", "--diagnostics-every", "2", "--metrics", metrics,
        ], timeout: 120)
        expectEnded(train, status: 0)
        let plot = try Executables.run(Executables.path("ddp"), ["plot", metrics, "--title", "a test"], timeout: 60)
        expectEnded(plot, status: 0)
        let png = try #require(FileManager.default.contents(atPath: dir.path + "/run.png"), "\(plot.output)")
        #expect(png.prefix(8) == Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]), "a PNG")
        #expect(png.count > 20_000, "four panels of curves, not an empty canvas: \(png.count) bytes")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["run.jsonl", "run.png"])
    }

    @Test("what is not a metrics file: one clear line, exit 1, no PNG", arguments: [
        ("missing", nil, "cannot read metrics file"),
        ("garbage", "{\"kind\": \"step\", \"step\": 1, \"loss\": 0.5}\nnot json\n", "m.jsonl:2: not a JSON object"),
        ("no steps", "{\"kind\": \"summary\", \"steps\": 0}\n", "has no step records"),
    ] as [(String, String?, String)])
    func refuses(name: String, contents: String?, message: String) throws {
        let dir = TemporaryDirectory()
        if let contents { _ = dir.write("m.jsonl", Array(contents.utf8)) }
        let outcome = try Executables.run(Executables.path("ddp"), ["plot", dir.path + "/m.jsonl"], timeout: 60)
        expectEnded(outcome, status: ExitStatus.failure)
        let lines = outcome.output.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].hasPrefix("ddp: error:") && lines[0].contains(message),
                "\(outcome.output)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/m.png"))
    }
}
