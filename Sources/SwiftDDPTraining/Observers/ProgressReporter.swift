import Foundation
import SwiftDDPCollectives
import SwiftDDPNN

/// Every `every` updated steps (and at the last): a progress line (rank 0 writes it) and a
/// metrics record with the loss averaged since the previous line, the throughput of the
/// slowest rank, and the communication time per step.
final class ProgressReporter: TrainingObserver {
    private let every: Int, total: Int, firstStep: Int
    private let group: any ProcessGroup
    private let timer: StepTimer
    private let optimizer: any Optimizer
    private let wallStart: Double
    private let interactive: Bool
    private let log: (String) -> Void
    private let write: ([String: Any]) -> Void
    private var samples = 0, seconds = 0.0, lossSum = 0.0, steps = 0
    private var windowStart = StepTimings()
    /// Scratch for the window's all-reduce (no allocation per line).
    private var window = [0.0, 0.0]

    init(every: Int, total: Int, firstStep: Int, group: any ProcessGroup, timer: StepTimer, optimizer: any Optimizer,
         interactive: Bool, log: @escaping (String) -> Void, write: @escaping ([String: Any]) -> Void)
    {
        (self.every, self.total, self.firstStep) = (every, total, firstStep)
        self.group = group
        self.timer = timer
        self.optimizer = optimizer
        self.interactive = interactive
        self.log = log
        self.write = write
        wallStart = monotonicSeconds()
        windowStart = timer.timings
    }

    func didRun(_ phase: StepPhase, of step: TrainingStep) throws {
        guard phase == .update else { return }
        samples += step.rows
        seconds += monotonicSeconds() - step.startSeconds - step.observerSeconds
        lossSum += step.loss
        steps += 1
        guard step.number % every == 0 || step.number == total else { return }
        (window[0], window[1]) = (Double(samples), seconds)
        try group.allReduce(&window, op: .max)  // the slowest rank sets the pace
        let throughput = window[1] > 0 ? Double(samples * group.worldSize) / window[1] : 0
        let meanLoss = lossSum / Double(steps)
        let perStep = 1000 / Double(steps)
        let timings = timer.timings
        write(["kind": "step", "step": step.number, "epoch": step.epoch + 1, "loss": step.loss,
               "mean_loss": meanLoss, "lr": Double(optimizer.learningRate), "samples_per_second": throughput,
               "syncbn_ms": (timings.syncBNCommunication - windowStart.syncBNCommunication) * perStep,
               "grad_sync_ms": (timings.gradientSync - windowStart.gradientSync) * perStep])
        (samples, seconds, lossSum, steps) = (0, 0, 0, 0)
        windowStart = timings
        let elapsed = monotonicSeconds() - wallStart
        let remaining = elapsed / Double(step.number - firstStep) * Double(total - step.number)
        line(step: step.number, epoch: step.epoch, loss: meanLoss, throughput: throughput, elapsed: elapsed,
             remaining: remaining)
    }

    /// Ends a redrawn progress line before other output.
    func breakLine() { if interactive { log("") } }

    private func line(step: Int, epoch: Int, loss: Double, throughput: Double, elapsed: Double, remaining: Double) {
        let time = "\(clock(elapsed)) elapsed" + (step < total ? ", ETA \(clock(remaining))" : "")
        if interactive {
            let width = 30
            let filled = total > 0 ? width * step / total : width
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            log(String(format: "\r\u{1B}[K[%@] %d/%d  epoch %d  loss %.4f  %.0f samples/s  %@", bar, step, total,
                       epoch + 1, loss, throughput, time))
        } else {
            log(String(format: "step %d/%d  epoch %d  loss %.4f  lr %.4g  %.0f samples/s  %@", step, total, epoch + 1,
                       loss, Double(optimizer.learningRate), throughput, time))
        }
    }

    /// 75 s → "1:15", 3725 s → "1:02:05".
    private func clock(_ seconds: Double) -> String {
        let s = Int(seconds.isFinite ? max(seconds, 0).rounded() : 0)
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
            : String(format: "%d:%02d", s / 60, s % 60)
    }
}
