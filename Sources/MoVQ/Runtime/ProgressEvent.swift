/// Where a long computation is, reported as it goes (decode, encode,
/// sampling). Callbacks run on the calling thread, between stages, so they
/// may print but should return quickly.
public struct ProgressEvent: Sendable, Equatable {
    /// What is running: "decode", "encode".
    public var task: String
    /// Image `image` of `images` (0-based).
    public var image: Int, images: Int
    /// Stage `stage` of `stages` done within the image (resolution levels plus the output stage).
    public var stage: Int, stages: Int
    /// In a banded run (`MoVQModel.memoryLimit`), pass `pass` of `passes` done (0 of 0 otherwise).
    public var pass: Int = 0, passes: Int = 0

    public init(task: String, image: Int, images: Int, stage: Int, stages: Int, pass: Int = 0, passes: Int = 0) {
        self.task = task; self.image = image; self.images = images; self.stage = stage; self.stages = stages
        self.pass = pass; self.passes = passes
    }

    /// Overall fraction done, in [0, 1].
    public var fraction: Double {
        let within = passes > 0 ? Double(pass) / Double(passes) : Double(stage) / Double(max(1, stages))
        return (Double(image) + within) / Double(max(1, images))
    }
}

/// A progress callback (`nil`: no reporting).
public typealias ProgressHandler = @Sendable (ProgressEvent) -> Void
