import ArgumentParser
import Foundation
import MoVQ

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate images: MaskGIT token sampling with a prior, then the MoVQ decoder. With no model, the embedded demo prior (Fashion-MNIST classes).",
        discussion: """
        Without --class, writes a grid with one row per class (--batch images each); with --class K, one row of \
        --batch images. Image i uses seed S + i (row r, column j of the grid: S + r * batch + j), so \
        `--seed S+i --batch 1` reproduces it alone, on any thread count. The prior file's kind picks the \
        sampler: MaskGIT (--steps, --choice-temperature, --schedule, --cfg) or autoregressive (--top-k, --top-p); \
        --temperature applies to both.
        """)

    @Argument(help: "Packed prior (.mvq, MaskGIT or autoregressive); default: the embedded demo prior.")
    var model: String?
    @Option(help: "Expected prior kind, maskgit or ar (default: whatever the file holds).")
    var prior: String?
    @Option(help: "Packed MoVQ decoder for the tokens (default: the one the prior names, or the embedded demo model).")
    var decoder: String?
    @Option(name: .customLong("class"), help: "Class label (default: every class, one grid row each).")
    var classLabel: Int?
    @Option(help: "Base seed.")
    var seed: UInt64 = 0
    @Option(help: "Images per class.")
    var batch: Int = 8
    @Option(help: "MaskGIT steps.")
    var steps: Int = 8
    @Option(help: "Sampling temperature (logits are divided by it).")
    var temperature: Float = 1
    @Option(help: "Choice temperature (Gumbel noise on confidences, annealed to 0).")
    var choiceTemperature: Float = 4.5
    @Option(help: "Mask schedule: cosine, linear, pow<k>, log, exp.")
    var schedule: String = "cosine"
    @Option(help: "Classifier-free guidance scale (0 = off; default: the prior's recommended scale, else 0).")
    var cfg: Float?
    @Option(help: "Autoregressive priors: keep the k most likely codes (0 = all).")
    var topK: Int = 0
    @Option(help: "Autoregressive priors: nucleus mass (1 = all).")
    var topP: Double = 1
    @Option(name: .shortAndLong, help: "Output PNG (a grid).")
    var output: String = "samples.png"
    @Option(help: "Also write the token maps, int64 [B, c, h, w].")
    var tokens: String?
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        try reportingErrors {
            guard output.hasSuffix(".png") else { throw MoVQError.invalidInput("output \(output) must end in .png") }
            guard batch >= 1 && batch <= 1024 else { throw MoVQError.invalidInput("--batch must be 1...1024") }
            guard let sched = MaskSchedule(name: schedule) else { throw MoVQError.invalidInput("unknown schedule '\(schedule)' (cosine, linear, pow<k>, log, exp)") }
            guard prior == nil || prior == "maskgit" || prior == "ar" else { throw MoVQError.invalidInput("--prior must be maskgit or ar") }
            guard let priorPath = model ?? DemoAssets.prior else { throw MoVQError.io(path: "demo-prior.mvq", reason: "embedded demo prior not found") }
            let kernels = try compute.priorKernels()
            let isGPT = try PackedFile(path: priorPath, verifyChecksums: false).header.prior?.isAutoregressive == true
            if let want = prior, (want == "ar") != isGPT {
                throw MoVQError.invalidInput("\(priorPath) holds a \(isGPT ? "ar" : "maskgit") prior, not \(want)")
            }
            let maskgit = isGPT ? nil : try MaskGITPrior(contentsOf: priorPath, kernels: kernels, memoryLimit: compute.memoryLimit)
            let gpt = isGPT ? try GPTPrior(contentsOf: priorPath, kernels: kernels, memoryLimit: compute.memoryLimit) : nil
            let c = maskgit?.config ?? gpt!.config
            guard let decoderPath = decoder ?? maskgit?.decoderPath ?? gpt?.decoderPath ?? DemoAssets.model else {
                throw MoVQError.invalidInput("no decoder: give --decoder")
            }
            let m = try compute.openModel(decoderPath)
            guard m.config.numVQEmbeddings == c.codes, m.config.channelsPerPosition == c.channels else {
                throw MoVQError.invalidInput("decoder \(decoderPath) has \(m.config.channelsPerPosition) x \(m.config.numVQEmbeddings) codes, the prior \(c.channels) x \(c.codes)")
            }
            let rows: [Int]
            if let k = classLabel {
                guard k >= 0 && k <= c.classes else { throw MoVQError.invalidInput("--class must be 0...\(c.classes) (\(c.classes) = unconditional)") }
                rows = [k]
            } else {
                rows = c.classes > 0 ? Array(0..<c.classes) : [0]
            }
            let labels = rows.flatMap { [Int](repeating: $0, count: batch) }
            try m.checkDecodeMemory(batch: labels.count, latentHeight: c.height, latentWidth: c.width)  // before sampling, not after
            let seeds = labels.indices.map { seed &+ UInt64($0) }
            let t0 = Date()
            let total = gpt?.length ?? steps
            let progress = { (s: Int) in
                FileHandle.standardError.write(Data(String(format: "\rstep %d/%d  %.2f s", s + 1, total, Date().timeIntervalSince(t0)).utf8))
            }
            let idx: IndexMap
            if let gpt {
                let settings = AutoregressiveSettings(temperature: Double(temperature), topK: topK, topP: topP)
                idx = try gpt.sample(classes: labels, seeds: seeds, settings: settings, threads: compute.threads, onStep: progress)
            } else {
                let guidance = cfg ?? maskgit!.file.header.metadata["guidance"].flatMap { Float($0) } ?? 0
                let settings = MaskGITSettings(steps: steps, temperature: temperature, choiceTemperature: choiceTemperature, schedule: sched, guidance: guidance)
                idx = try maskgit!.sample(classes: labels, seeds: seeds, settings: settings, threads: compute.threads, onStep: progress)
            }
            let t1 = Date()
            FileHandle.standardError.write(Data("\n".utf8))
            let images = ImageConversion.images(from: try m.decode(indices: idx, threads: compute.threads))
            let t2 = Date()
            FileHandle.standardError.write(Data(String(format: "%d images: sampling %.2f s (%d steps), decoding %.2f s, %d threads\n",
                                                       labels.count, t1.timeIntervalSince(t0), total, t2.timeIntervalSince(t1), compute.threads).utf8))
            let grid = ImageConversion.grid(rows.indices.map { r in Array(images[(r * batch)..<((r + 1) * batch)]) })
            var files = [(path: output, data: PNG.encode(grid))]
            if let tokens { files.append((tokens, NPY.encode(shape: idx.shape, int64: idx.values.map { Int64($0) }))) }
            try writeOutputs(files)
            print("\(rows.count) row(s) x \(batch) images")
        }
    }
}
