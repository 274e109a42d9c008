/// Library version.
public enum MoVQVersion {
    public static let string = "0.1.0"
}
