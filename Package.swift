// swift-tools-version:6.0
import PackageDescription

// Release builds drop bounds/exclusivity checks in hot loops.
let optimize: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release))]

// Kernel tiers: one generic source (MoVQKernelCore, @inlinable) specialized in
// modules built for each ISA; the runtime picks one from CPUID at start-up.
#if arch(x86_64)
let tierTargets: [Target] = [
    .target(name: "MoVQKernelsAVX512VNNI", dependencies: ["MoVQKernelCore"],
            swiftSettings: optimize + [.unsafeFlags(["-target-cpu", "cascadelake"])]),
    .target(name: "MoVQKernelsAVX512", dependencies: ["MoVQKernelCore"],
            swiftSettings: optimize + [.unsafeFlags(["-target-cpu", "skylake-avx512"])]),
    .target(name: "MoVQKernelsAVX2", dependencies: ["MoVQKernelCore"],
            swiftSettings: optimize + [.unsafeFlags(["-target-cpu", "haswell"])]),
]
let tierDependencies: [Target.Dependency] = ["MoVQKernelsAVX512VNNI", "MoVQKernelsAVX512", "MoVQKernelsAVX2"]
#else
let tierTargets: [Target] = []
let tierDependencies: [Target.Dependency] = []
#endif

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
    targets: tierTargets + [
        .target(name: "CPUFeatures"),
        .target(name: "MoVQKernelCore", swiftSettings: optimize, linkerSettings: [.linkedLibrary("m")]),
        .target(
            name: "MoVQ",
            dependencies: ["CPUFeatures", "MoVQKernelCore"] + tierDependencies,
            swiftSettings: optimize,
            linkerSettings: [.linkedLibrary("m")]
        ),
        .executableTarget(
            name: "movq",
            dependencies: ["MoVQ", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            resources: [.copy("Resources/demo.mvq"), .copy("Resources/demo-prior.mvq"), .copy("Resources/demo_images")],
            swiftSettings: optimize
        ),
        .testTarget(
            name: "MoVQTests",
            dependencies: ["MoVQ", "movq", "MoVQKernelCore"],
            exclude: ["Fixtures"],
            swiftSettings: optimize
        ),
    ]
)
