/// Library version.
public enum MoVQVersion {
    /// The semantic version of the library and the `movq` tool.
    public static let string = "0.1.0"
}
