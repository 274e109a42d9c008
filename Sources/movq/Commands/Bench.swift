import ArgumentParser
import Dispatch
import Foundation
import MoVQ
import MoVQDemo

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time the decoder (a MaskGIT prior: one transformer forward and a whole sample; an autoregressive prior: whole samples, tokens/s): median/p90 latency, GFLOP/s, fraction of the measured FMA peak, peak RSS.")

    @Argument(help: "Packed .mvq model (default: the embedded demo model).")
    var model: String?
    @Option(help: "Output image size in pixels (square).")
    var size: Int = 256
    @Option(help: "Images per decode.")
    var batch: Int = 1
    @Option(help: "Timed runs (after one warm-up run).")
    var runs: Int = 5
    @Flag(help: "Print time per operator.")
    var layers = false
    @Flag(help: "Decoder only: also report the cold start, opening the model (map, validate, pack weights) plus the first decode, against the steady-state median.")
    var cold = false
    @Flag(help: "Print one JSON object.")
    var json = false
    @Flag(help: "Decoder only: print the memory plan of a --size decode under --max-memory (whole or banded, passes, band rows, recompute factor, estimated bytes) without decoding.")
    var plan = false
    @Option(help: "Prior only: MaskGIT steps of the timed whole sample.")
    var steps: Int = 8
    @Option(help: "Prior only: decoder for the whole sample (default: the one the prior names).")
    var decoder: String?
    @Option(help: "Prior only: classifier-free guidance scale of the timed whole sample (0 = off; on, every forward runs the conditional and unconditional halves: batch 2 per image).")
    var cfg: Float = 0
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        try reportingErrors {
            let (path, _) = try DemoAssets.modelAndInputs(model.map { [$0] } ?? [])
            if let prior = try PackedFile(path: path, verifyChecksums: false).header.prior {
                return try prior.isAutoregressive ? benchAutoregressive(path) : benchPrior(path)
            }
            let backend = try compute.backend()
            let openStart = DispatchTime.now().uptimeNanoseconds
            let m = try compute.openModel(path)
            let openSeconds = Double(DispatchTime.now().uptimeNanoseconds - openStart) / 1e9
            var firstSeconds = 0.0
            let f = m.config.downsampleFactor
            if plan { return try printPlan(m, latentSize: size / f) }
            guard runs >= 1 else { throw MoVQError.invalidInput("--runs must be at least 1") }
            let z = try randomLatent(m, size: size, batch: batch, seed: 0)
            let h = size / f
            let flops = m.decoderFLOPs(latentHeight: h, latentWidth: h) * Double(batch)
            // The SIMD path's Winograd convolutions execute fewer multiply-adds than the model's FLOPs.
            let isFast = { if case .simd = backend { return true }; return false }()
            let executed = isFast ? m.decoderFLOPs(latentHeight: h, latentWidth: h, executed: true) * Double(batch) : flops
            let tierForPeak = { () -> KernelTier in if case .simd(let t) = backend { return t }; return .best }()
            let peak = MachinePeak.measure(tierForPeak, threads: compute.threads)
            var times: [Double] = []
            let line = ProgressLine(quiet: compute.quiet || json)
            let profiler = Profiler()
            for i in 0...runs {
                if layers && i == runs { m.profiler = profiler }
                let t0 = DispatchTime.now().uptimeNanoseconds
                _ = try m.decode(latent: z, threads: compute.threads)
                let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                m.profiler = nil
                if i > 0 { times.append(dt) } else { firstSeconds = dt }
                if !json { line.update(String(format: "%@ %d/%d: %.3f s", i == 0 ? "warm-up" : "run", i, runs, dt)) }
            }
            line.finish()
            let sorted = times.sorted()
            let median = sorted[sorted.count / 2]
            let p90 = sorted[min(sorted.count - 1, Int((Double(sorted.count) * 0.9).rounded(.up)) - 1)]
            let gflops = flops / median / 1e9
            let rss = peakRSSBytes()
            let estimate = m.estimatedDecodeBytes(batch: batch, latentHeight: h, latentWidth: h, threads: compute.threads)
            let schedule = m.decodeSchedule(latentHeight: h, latentWidth: h, threads: compute.threads)
            if json {
                var obj: [String: Any] = [
                    "model": path, "size": size, "batch": batch, "threads": compute.threads, "kernels": backend.name,
                    "weights": m.weightPrecision.rawValue, "compute": m.computeMode,
                    "median_s": median, "p90_s": p90, "runs": runs, "gflop": flops / 1e9, "gflops": gflops,
                    "executed_gflop": executed / 1e9, "executed_gflops": executed / median / 1e9,
                    "peak_gflops": peak / 1e9, "fraction_of_peak": executed / median / peak, "peak_rss_bytes": rss,
                    "workspace_bytes": m.workspaceBytes, "estimated_bytes": estimate, "banded": schedule?.banded ?? false,
                    "passes": schedule?.passes ?? 0, "recompute_factor": schedule?.recomputeFactor ?? 1, "band_rows": schedule?.bandRows ?? 0,
                    "runtime_options": RuntimeOptions.current.description,
                ]
                if cold { obj["open_s"] = openSeconds; obj["first_decode_s"] = firstSeconds; obj["cold_over_steady"] = (openSeconds + firstSeconds) / median }
                print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
            } else {
                print(String(format: "decode %dx%d batch %d, %d threads, kernels %@, %@ weights, %@ compute: median %.3f s, p90 %.3f s (%d runs)",
                             size, size, batch, compute.threads, backend.name, m.weightPrecision.rawValue, m.computeMode, median, p90, runs))
                print(String(format: "%.1f model GFLOP per decode: %.1f GFLOP/s effective", flops / 1e9, gflops))
                print(String(format: "%.1f GFLOP executed (Winograd): %.1f GFLOP/s = %.0f%% of the measured FMA peak (%.1f GFLOP/s on %d threads)",
                             executed / 1e9, executed / median / 1e9, 100 * executed / median / peak, peak / 1e9, compute.threads))
                print("runtime options: \(RuntimeOptions.current)")
                print(String(format: "peak RSS %.0f MB (workspace %.0f MB, weights mmapped %.0f MB; estimated before the run: %.0f MB)",
                             Double(rss) / 1e6, Double(m.workspaceBytes) / 1e6, Double(m.file.fileSize) / 1e6, estimate / 1e6))
                if let s = schedule, s.banded {
                    print(String(format: "banded under --max-memory %.0f MB: %d passes, bands of %d rows, recompute factor %.2f (executed FLOPs banded / full)",
                                 Double(m.memoryLimit) / 1e6, s.passes, s.bandRows, s.recomputeFactor))
                }
                if cold {
                    print(String(format: "cold start: open %.3f s + first decode %.3f s = %.3f s, %.2fx the steady-state median",
                                 openSeconds, firstSeconds, openSeconds + firstSeconds, (openSeconds + firstSeconds) / median))
                }
                if layers {
                    let rows = profiler.report
                    let total = rows.reduce(0) { $0 + $1.seconds }
                    print("per operator (one run; GFLOP/s in model FLOPs):")
                    for r in rows.sorted(by: { $0.seconds > $1.seconds }) {
                        let rate = r.flops > 0 ? String(format: "%7.1f GFLOP/s", r.flops / r.seconds / 1e9) : "               "
                        print(String(format: "  %6.1f ms %5.1f%% %@  x%-3d %@", r.seconds * 1e3, 100 * r.seconds / total, rate, r.calls, r.name))
                    }
                }
            }
        }
    }

    /// The memory plan of one decode at `latentSize`, without running it.
    func printPlan(_ m: MoVQModel, latentSize h: Int) throws {
        let estimate = m.estimatedDecodeBytes(batch: batch, latentHeight: h, latentWidth: h, threads: compute.threads)
        guard let s = m.decodeSchedule(latentHeight: h, latentWidth: h, threads: compute.threads) else {
            throw MoVQError.invalidInput(String(format: "a %dx%d decode fits no schedule under --max-memory %.0f MB (the whole decode needs about %.0f MB)",
                                                size, size, Double(m.memoryLimit) / 1e6, estimate / 1e6))
        }
        if json {
            let obj: [String: Any] = ["size": size, "threads": compute.threads, "max_memory_bytes": m.memoryLimit, "whole_estimated_bytes": estimate,
                                      "banded": s.banded, "passes": s.passes, "band_rows": s.bandRows, "recompute_factor": s.recomputeFactor,
                                      "arena_bytes": s.arenaBytes]
            print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
        } else if s.banded {
            print(String(format: "%dx%d under --max-memory %.0f MB: banded, %d passes, bands of %d rows, recompute factor %.2f, activation arena %.0f MB (estimated peak %.0f MB)",
                         size, size, Double(m.memoryLimit) / 1e6, s.passes, s.bandRows, s.recomputeFactor, Double(s.arenaBytes) / 1e6, estimate / 1e6))
        } else {
            print(String(format: "%dx%d under --max-memory %.0f MB: whole maps, about %.0f MB", size, size, Double(m.memoryLimit) / 1e6, estimate / 1e6))
        }
    }

    /// Median and p90 of `runs` timed calls after one warm-up, with a progress line.
    func timeRuns(_ what: String, _ body: () throws -> Void) rethrows -> (median: Double, p90: Double) {
        var times: [Double] = []
        let line = ProgressLine(quiet: compute.quiet || json)
        for i in 0...runs {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            if i > 0 { times.append(dt) }
            if !json { line.update(String(format: "%@ %@ %d/%d: %.3f s", what, i == 0 ? "warm-up" : "run", i, runs, dt)) }
        }
        line.finish()
        let sorted = times.sorted()
        return (sorted[sorted.count / 2], sorted[min(sorted.count - 1, Int((Double(sorted.count) * 0.9).rounded(.up)) - 1)])
    }

    /// One transformer forward at `--batch`, then a whole sample (steps + decode) when a decoder is at hand.
    func benchPrior(_ path: String) throws {
        let kernels = try compute.priorTier()
        guard batch >= 1, runs >= 1 else { throw MoVQError.invalidInput("--batch and --runs must be at least 1") }
        let p = try MaskGITPrior(contentsOf: path, tier: kernels, memoryLimit: compute.memoryLimit)
        let c = p.config, s = Double(c.positions + 1), d = Double(c.hidden)
        let mlpIn = Double(c.isGEGLU ? 2 * c.mlp : c.mlp)
        let perLayer = 2 * s * (4 * d * d + mlpIn * d + d * Double(c.mlp)) + 4 * s * s * d
        let flops = Double(batch) * (Double(c.layers) * perLayer + 2 * s * d * d + 2 * Double(c.positions * c.channels * c.codes) * d)
        let tokens = [Int32](repeating: Int32(c.codes), count: batch * c.positions * c.channels)
        let classes = [Int](repeating: 0, count: batch)
        let peak = MachinePeak.measure(kernels, threads: compute.threads)
        let profiler = Profiler()
        let fwd = try timeRuns("forward") { _ = try p.logits(tokens: tokens, classes: classes, threads: compute.threads) }
        if layers { p.profiler = profiler; _ = try p.logits(tokens: tokens, classes: classes, threads: compute.threads); p.profiler = nil }
        // The sampling loop alone on fixed random logits: what a whole sample costs beyond its forwards.
        var rng = SeededGenerator(seed: 1)
        let fixedLogits = (0..<(batch * c.positions * c.channels * c.codes)).map { _ in Float(rng.nextUniform() * 16 - 8) }
        let blank = [Int32](repeating: Int32(c.codes), count: c.positions * c.channels)
        let loop = try timeRuns("sampler") {
            var noise = classes.indices.map { SeededGenerator(seed: UInt64($0)) }
            _ = try MaskGITSampler.sample(initial: classes.map { _ in blank }, classes: classes, codes: c.codes, channels: c.channels,
                                          unconditionalClass: c.classes, settings: MaskGITSettings(steps: steps), noise: &noise,
                                          threads: compute.threads, logits: { _, _ in fixedLogits })
        }
        var whole: (median: Double, p90: Double)? = nil
        var split = (sampling: 0.0, decoding: 0.0)
        if let dp = decoder ?? p.decoderPath, FileManager.default.fileExists(atPath: dp) {
            let m = try compute.openModel(dp)
            let settings = MaskGITSettings(steps: steps, guidance: cfg)
            whole = try timeRuns("sample") {
                let t0 = Date()
                let idx = try p.sample(classes: classes, seeds: classes.indices.map { UInt64($0) }, settings: settings, threads: compute.threads)
                let t1 = Date()
                _ = try m.decode(indices: idx, threads: compute.threads)
                split = (t1.timeIntervalSince(t0), Date().timeIntervalSince(t1))
            }
        }
        let rss = peakRSSBytes()
        if json {
            var obj: [String: Any] = ["model": path, "kind": "maskgit-prior", "batch": batch, "threads": compute.threads, "kernels": kernels.name,
                                      "weights": Set(p.file.header.tensors.map(\.dtype)).map(\.rawValue).sorted().joined(separator: ","),
                                      "forward_median_s": fwd.median, "forward_p90_s": fwd.p90, "forward_gflop": flops / 1e9,
                                      "forward_gflops": flops / fwd.median / 1e9, "peak_gflops": peak / 1e9,
                                      "fraction_of_peak": flops / fwd.median / peak, "peak_rss_bytes": rss, "median_s": fwd.median,
                                      "sampler_loop_median_s": loop.median]
            if let w = whole {
                obj["sample_median_s"] = w.median; obj["sample_steps"] = steps; obj["sample_cfg"] = Double(cfg)
                obj["last_sampling_s"] = split.sampling; obj["last_decoding_s"] = split.decoding; obj["images_per_s"] = Double(batch) / w.median
            }
            print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
            return
        }
        print(String(format: "transformer forward, batch %d, sequence %d, %d threads, kernels %@: median %.3f s, p90 %.3f s (%d runs)",
                     batch, c.positions + 1, compute.threads, kernels.name, fwd.median, fwd.p90, runs))
        print(String(format: "%.2f GFLOP per forward: %.1f GFLOP/s = %.0f%% of the measured fp32 FMA peak (%.1f GFLOP/s; int8 linears can exceed it)",
                     flops / 1e9, flops / fwd.median / 1e9, 100 * flops / fwd.median / peak, peak / 1e9))
        print(String(format: "sampling loop alone (%d steps, %d x %d positions x %d codes, fixed logits): median %.4f s, p90 %.4f s",
                     steps, batch, c.positions * c.channels, c.codes, loop.median, loop.p90))
        if let w = whole {
            print(String(format: "whole %d-step sample%@ + decode, batch %d: median %.3f s, p90 %.3f s, %.2f images/s (last run: sampling %.3f s, decoding %.3f s)",
                         steps, cfg != 0 ? String(format: " with guidance %g", cfg) : "", batch, w.median, w.p90, Double(batch) / w.median,
                         split.sampling, split.decoding))
        }
        print("runtime options: \(RuntimeOptions.current)")
        print(String(format: "peak RSS %.0f MB", Double(rss) / 1e6))
        if layers {
            let rows = profiler.report, total = rows.reduce(0) { $0 + $1.seconds }
            for r in rows.sorted(by: { $0.seconds > $1.seconds }) {
                let rate = r.flops > 0 ? String(format: "%7.1f GFLOP/s", r.flops / r.seconds / 1e9) : "               "
                print(String(format: "  %6.1f ms %5.1f%% %@  x%-3d %@", r.seconds * 1e3, 100 * r.seconds / total, rate, r.calls, r.name))
            }
        }
    }

    /// An autoregressive (gpt) prior: whole samples of every token at `--batch`, as tokens per second.
    func benchAutoregressive(_ path: String) throws {
        let kernels = try compute.priorTier()
        guard batch >= 1, runs >= 1 else { throw MoVQError.invalidInput("--batch and --runs must be at least 1") }
        let p = try GPTPrior(contentsOf: path, tier: kernels, memoryLimit: compute.memoryLimit)
        let classes = [Int](repeating: 0, count: batch)
        let t = try timeRuns("sample") {
            _ = try p.sample(classes: classes, seeds: classes.indices.map { UInt64($0) }, threads: compute.threads)
        }
        let tokens = Double(batch * p.length), rss = peakRSSBytes()
        if json {
            let obj: [String: Any] = ["model": path, "kind": "gpt-prior", "batch": batch, "threads": compute.threads, "kernels": kernels.name,
                                      "tokens": p.length, "median_s": t.median, "p90_s": t.p90, "tokens_per_s": tokens / t.median, "peak_rss_bytes": rss]
            print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
            return
        }
        print(String(format: "autoregressive sample of %d tokens, batch %d, %d threads, kernels %@: median %.3f s, p90 %.3f s (%d runs): %.0f tokens/s",
                     p.length, batch, compute.threads, kernels.name, t.median, t.p90, runs, tokens / t.median))
        print(String(format: "peak RSS %.0f MB", Double(rss) / 1e6))
    }
}
