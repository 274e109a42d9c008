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

    /// Overall fraction done, in [0, 1].
    public var fraction: Double {
        (Double(image) + Double(stage) / Double(max(1, stages))) / Double(max(1, images))
    }
}

/// A progress callback (`nil`: no reporting).
public typealias ProgressHandler = @Sendable (ProgressEvent) -> Void
