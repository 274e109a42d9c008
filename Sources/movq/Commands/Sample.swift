import ArgumentParser
import Foundation
import MoVQ
import MoVQDemo

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate images: MaskGIT token sampling with a prior, then the MoVQ decoder. With no model, the embedded demo prior (Fashion-MNIST classes).",
        discussion: """
        Without --class, writes a grid with one row per class (--batch images each); with --class K, one row of \
        --batch images; with --no-grid, one file per image instead (OUT-i.png). Image i uses seed S + i (row r, \
        column j of the grid: S + r * batch + j), so \
        `--seed S+i --batch 1` reproduces it alone, on any thread count. The prior file's kind picks the \
        sampler: MaskGIT (--steps, --choice-temperature, --schedule, --cfg) or autoregressive (--top-k, --top-p); \
        --temperature applies to both.
        """)

    @Argument(help: "Packed prior (.mvq, MaskGIT or autoregressive); default: the demo prior.")
    var model: String?
    @Option(help: "Expected prior kind, maskgit or ar (default: whatever the file holds).")
    var prior: String?
    @Option(help: "Packed MoVQ decoder for the tokens (default: the one the prior names; the demo decoder for the demo prior).")
    var decoder: String?
    @Option(name: .customLong("class"), help: "Class label (default: every class, one grid row each, for priors of at most 16 classes).")
    var classLabel: Int?
    @Option(help: "Base seed.")
    var seed: UInt64 = 0
    @Option(help: "Images per class.")
    var batch: Int = 8
    @Option(help: "MaskGIT: steps (default: the prior's recorded steps, 12 for the official models; else 8).")
    var steps: Int?
    @Option(help: "Sampling temperature (logits are divided by it).")
    var temperature: Float = 1
    @Option(help: "MaskGIT: choice temperature, Gumbel noise on confidences annealed to 0 (default: the prior's recorded one, else 4.5).")
    var choiceTemperature: Float?
    @Option(help: "MaskGIT: mask schedule, cosine, linear, pow<k>, log or exp (default cosine).")
    var schedule: String?
    @Option(help: ArgumentHelp("MaskGIT random stream: movq (each image its own seed: the same alone or in any batch), jax (the official JAX loop's draws from PRNGKey(--seed), jax_threefry_partitionable on, JAX >= 0.5) or jax-original (partitionable off, the JAX of the official code).",
                               valueName: "movq|jax|jax-original"))
    var rng: String = "movq"
    @Option(help: "MaskGIT: classifier-free guidance scale, 0 = off (default: the prior's recommended scale, else 0).")
    var cfg: Float?
    @Option(help: "Autoregressive: keep the k most likely codes, 0 = all (default 0).")
    var topK: Int?
    @Option(help: "Autoregressive: nucleus mass, 1 = all (default 1).")
    var topP: Double?
    @Option(name: .shortAndLong, help: "Output PNG: a grid, or with --no-grid OUT-i.png per image.")
    var output: String = "samples.png"
    @Flag(inversion: .prefixedNo, help: "Write one grid (default) or one file per image.")
    var grid = true
    @Option(help: "Grid: pixels of white between and around the images.")
    var padding: Int = 2
    @Option(help: "Also write the token maps, int64 [B, c, h, w].")
    var tokens: String?
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        try reportingErrors {
            guard output.hasSuffix(".png") else { throw MoVQError.invalidInput("output \(output) must end in .png") }
            guard batch >= 1 && batch <= 1024 else { throw MoVQError.invalidInput("--batch must be 1...1024") }
            guard (0...64).contains(padding) else { throw MoVQError.invalidInput("--padding must be 0...64") }
            let scheduleName = schedule ?? "cosine"
            guard let maskSchedule = MaskSchedule(name: scheduleName) else {
                throw MoVQError.invalidInput("unknown schedule '\(scheduleName)' (cosine, linear, pow<k>, log, exp)")
            }
            guard prior == nil || prior == "maskgit" || prior == "ar" else { throw MoVQError.invalidInput("--prior must be maskgit or ar") }
            let stream: MaskGITRandomStream
            switch rng {
            case "movq": stream = .perImage
            case "jax": stream = .jax(partitionable: true)
            case "jax-original": stream = .jax(partitionable: false)
            default: throw MoVQError.invalidInput("--rng must be movq, jax or jax-original, got '\(rng)'")
            }
            let priorPath = try model ?? DemoAssets.prior()
            let tier = try compute.priorTier()
            let isGPT = try PackedFile(path: priorPath, verifyChecksums: false).header.prior?.isAutoregressive == true
            if let want = prior, (want == "ar") != isGPT {
                throw MoVQError.invalidInput("\(priorPath) holds \(isGPT ? "an autoregressive (ar)" : "a MaskGIT") prior, not \(want == "ar" ? "an autoregressive" : "a MaskGIT") one")
            }
            // Options of the other sampler would silently do nothing: refuse them.
            let wrong = isGPT ? [("--steps", steps != nil), ("--choice-temperature", choiceTemperature != nil), ("--schedule", schedule != nil), ("--cfg", cfg != nil), ("--rng", rng != "movq")]
                              : [("--top-k", topK != nil), ("--top-p", topP != nil)]
            if let (flag, _) = wrong.first(where: { $0.1 }) {
                throw MoVQError.invalidInput("\(flag) does not apply to \(isGPT ? "an autoregressive" : "a MaskGIT") prior")
            }
            let maskgit = isGPT ? nil : try MaskGITPrior(contentsOf: priorPath, tier: tier, memoryLimit: compute.memoryLimit)
            let gpt = isGPT ? try GPTPrior(contentsOf: priorPath, tier: tier, memoryLimit: compute.memoryLimit) : nil
            let c = maskgit?.config ?? gpt!.config
            // A grid of every class is for small priors; 1000 ImageNet classes x --batch would run for hours.
            if classLabel == nil && c.classes > 16 {
                throw MoVQError.invalidInput("\(priorPath) has \(c.classes) classes: choose one with --class (a grid of every class is made for at most 16)")
            }
            let named = maskgit?.decoderPath ?? gpt?.decoderPath
            let decoderPath: String
            if let d = decoder ?? named { decoderPath = d } else if model == nil { decoderPath = try DemoAssets.model() } else {
                throw MoVQError.invalidInput("\(priorPath) names no decoder: give the MoVQ its tokens are for with --decoder MODEL.mvq")
            }
            let m = try compute.openModel(decoderPath)
            guard m.config.numVQEmbeddings == c.codes, m.config.channelsPerPosition == c.channels else {
                throw MoVQError.invalidInput("decoder \(decoderPath) has \(m.config.channelsPerPosition) x \(m.config.numVQEmbeddings) codes, the prior \(c.channels) x \(c.codes)")
            }
            // Sampling settings the prior file records (the official models: steps, choice temperature, no null class).
            let recorded = maskgit?.file.header.metadata ?? [:]
            let noNullClass = recorded["null_class"] == "none"
            let rows: [Int]
            if let k = classLabel {
                if noNullClass && k == c.classes { throw MoVQError.invalidInput("--class must be 0...\(c.classes - 1): \(priorPath) has no unconditional class") }
                guard k >= 0 && k <= c.classes else { throw MoVQError.invalidInput("--class must be 0...\(c.classes) (\(c.classes) = unconditional)") }
                rows = [k]
            } else {
                rows = c.classes > 0 ? Array(0..<c.classes) : [0]
            }
            let labels = rows.flatMap { [Int](repeating: $0, count: batch) }
            try m.checkDecodeMemory(batch: labels.count, latentHeight: c.height, latentWidth: c.width, threads: compute.threads)  // before sampling, not after
            let seeds = labels.indices.map { seed &+ UInt64($0) }
            let line = compute.progress
            let t0 = Date()
            let total = gpt?.length ?? steps ?? recorded["steps"].flatMap { Int($0) } ?? MaskGITSettings().steps
            let onStep = { (s: Int) in line.update(String(format: "sampling: step %d/%d  %.2f s", s + 1, total, Date().timeIntervalSince(t0))) }
            let idx: IndexMap
            if let gpt {
                let settings = AutoregressiveSettings(temperature: Double(temperature), topK: topK ?? 0, topP: topP ?? 1)
                idx = try gpt.sample(classes: labels, seeds: seeds, settings: settings, threads: compute.threads, onStep: onStep)
            } else {
                let guidance = cfg ?? recorded["guidance"].flatMap { Float($0) } ?? 0
                if guidance != 0 && noNullClass {
                    throw MoVQError.invalidInput("\(priorPath) has no unconditional class (the official MaskGIT models were trained without one): --cfg needs 0")
                }
                let choice = choiceTemperature ?? recorded["choice_temperature"].flatMap { Float($0) } ?? MaskGITSettings().choiceTemperature
                let settings = MaskGITSettings(steps: total, temperature: temperature, choiceTemperature: choice,
                                               schedule: maskSchedule, guidance: guidance, stream: stream)
                idx = try maskgit!.sample(classes: labels, seeds: seeds, settings: settings, threads: compute.threads, onStep: onStep)
            }
            let t1 = Date()
            line.finish()
            let images = ImageConversion.images(from: try m.decode(indices: idx, threads: compute.threads, progress: line.handler(t1)))
            let t2 = Date()
            line.finish(String(format: "%@: sampling %.2f s (%d %@), decoding %.2f s, %@", plural(labels.count, "image"),
                               t1.timeIntervalSince(t0), total, gpt == nil ? "steps" : "tokens", t2.timeIntervalSince(t1), plural(compute.threads, "thread")))
            var files: [(path: String, data: Data)]
            if grid {
                files = [(output, PNG.encode(ImageConversion.grid(rows.indices.map { r in Array(images[(r * batch)..<((r + 1) * batch)]) }, padding: padding)))]
            } else {
                files = pngFiles(images, to: output)
            }
            if let tokens { files.append((tokens, NPY.encode(shape: idx.shape, int64: idx.values.map { Int64($0) }))) }
            try writeOutputs(files)
            print(grid ? "\(plural(rows.count, "row")) x \(plural(batch, "image")) (classes \(rows.map(String.init).joined(separator: ", ")), seeds \(seed)...\(seed &+ UInt64(labels.count - 1)))"
                       : "image i: class \(rows.count == 1 ? String(rows[0]) : "i / \(batch)"), seed \(seed) + i")
        }
    }
}
