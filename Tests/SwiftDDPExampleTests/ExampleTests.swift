import Foundation
import Testing
@testable import SwiftDDPTestSupport

/// Examples/ is a package of its own that depends on this one by path, as a user's would: it is
/// built here (scripts/test.sh builds it first and checks it for warnings) and each example runs
/// under mpirun.
@Suite("Examples/ under mpirun", .serialized)
struct ExampleTests {
    static let examples = Executables.packageFile("Examples")

    /// Builds the examples package (incremental: nothing to do after scripts/test.sh) and
    /// returns its executables' folder.
    static func build() throws -> String {
        let outcome = try Executables.run("/usr/bin/env", ["swift", "build", "--package-path", examples],
                                          timeout: 1_200)
        try #require(outcome.status == 0 && !outcome.timedOut, "swift build of Examples/ failed:\n\(outcome.output)")
        let path = try Executables.run("/usr/bin/env",
                                       ["swift", "build", "--package-path", examples, "--show-bin-path"], timeout: 120)
        return path.output.split(separator: "\n").last.map(String.init) ?? ""
    }

    @Test("custom-loop: a residual MLP defined in the example, trained by a hand-written loop, learns on 1 and 2 ranks",
          arguments: [1, 2])
    func customLoop(np: Int) throws {
        let bin = try Self.build()
        let mpirun = ["-np", String(np), "--oversubscribe", "--bind-to", "none"] + Executables.localJobArguments
        let outcome = try Executables.run(Executables.mpirunPath,
                                          mpirun + [bin + "/custom-loop", "--synthetic", "--epochs", "2"], timeout: 300)
        expectEnded(outcome, status: 0)
        let lines = outcome.output.split(separator: "\n").filter { $0.hasPrefix("epoch ") }
        #expect(lines.count == 2 && lines.allSatisfy { $0.hasSuffix("on \(np) ranks") }, "\(outcome.output)")
        let accuracy = lines.last.flatMap { $0.split(separator: " ").first { $0.hasSuffix("%") } }
            .flatMap { Double($0.dropLast()) }
        #expect((accuracy ?? 0) > 90, "synthetic data is easy: \(outcome.output)")
    }

    @Test("custom-layer: a user's layer passes GradientCheck and trains inside a model on 2 ranks")
    func customLayer() throws {
        let bin = try Self.build()
        let mpirun = ["-np", "2", "--oversubscribe", "--bind-to", "none"] + Executables.localJobArguments
        let outcome = try Executables.run(Executables.mpirunPath, mpirun + [bin + "/custom-layer"], timeout: 300)
        expectEnded(outcome, status: 0)
        #expect(outcome.output.contains("gradient check passed"), "\(outcome.output)")
        let losses = outcome.output.split(separator: "\n").first { $0.hasPrefix("ScaledSquare model: loss ") }
            .map { $0.split(separator: " ").compactMap { Double($0.trimmingCharacters(in: .punctuationCharacters)) } }
        #expect((losses?.count ?? 0) >= 2 && losses![1] < losses![0] / 4, "the loss falls: \(outcome.output)")
    }
}
