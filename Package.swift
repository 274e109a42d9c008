// swift-tools-version:6.0
import PackageDescription

// Release builds drop bounds/exclusivity checks in hot loops; kernels stay
// portable here (no -target-cpu), ISA tiers are chosen at run time.
let optimize: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release))]

let package = Package(
    name: "MoVQ",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "MoVQ", targets: ["MoVQ"]),
        .executable(name: "movq", targets: ["movq"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .target(
            name: "MoVQ",
            swiftSettings: optimize,
            linkerSettings: [.linkedLibrary("m")]
        ),
        .executableTarget(
            name: "movq",
            dependencies: ["MoVQ", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            resources: [.copy("Resources/demo.mvq"), .copy("Resources/demo_images")],
            swiftSettings: optimize
        ),
        .testTarget(
            name: "MoVQTests",
            dependencies: ["MoVQ", "movq"],
            exclude: ["Fixtures"],
            swiftSettings: optimize
        ),
    ]
)
