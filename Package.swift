// swift-tools-version:6.0
import PackageDescription

// Release builds drop bounds/exclusivity checks only where the loops are hot
// and every index comes from shapes MoVQIO has validated: the kernels and the
// runtime that drives them (MoVQ; at -O it executes 6.6% more instructions,
// Benchmarks/README.md). Everything that reads bytes from outside (MoVQIO:
// formats, checkpoints, images, arrays, configs) and the CLI keep Swift's
// runtime checks: a missed check there traps, never corrupts memory.
let unchecked: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release))]
let checked: [SwiftSetting] = [.unsafeFlags(["-O", "-wmo"], .when(configuration: .release))]

// Kernel tiers: one generic source (MoVQKernelCore, @inlinable) specialized in
// modules built for each ISA; the runtime picks one from CPUID at start-up.
#if arch(x86_64)
let tierTargets: [Target] = [
    .target(name: "MoVQKernelsAVX512VNNI", dependencies: ["MoVQKernelCore"],
            swiftSettings: unchecked + [.unsafeFlags(["-target-cpu", "cascadelake"])]),
    .target(name: "MoVQKernelsAVX512", dependencies: ["MoVQKernelCore"],
            swiftSettings: unchecked + [.unsafeFlags(["-target-cpu", "skylake-avx512"])]),
    .target(name: "MoVQKernelsAVX2", dependencies: ["MoVQKernelCore"],
            swiftSettings: unchecked + [.unsafeFlags(["-target-cpu", "haswell"])]),
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
        .target(name: "MoVQKernelCore", swiftSettings: unchecked, linkerSettings: [.linkedLibrary("m")]),
        // Parsers, file formats, checkpoint import, image/npy I/O, configs.
        .target(name: "MoVQIO", swiftSettings: checked),
        .target(
            name: "MoVQ",
            dependencies: ["CPUFeatures", "MoVQIO", "MoVQKernelCore"] + tierDependencies,
            swiftSettings: unchecked,
            linkerSettings: [.linkedLibrary("m")]
        ),
        .executableTarget(
            name: "movq",
            dependencies: ["MoVQ", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            resources: [.copy("Resources/demo.mvq"), .copy("Resources/demo-prior.mvq"), .copy("Resources/demo_images")],
            swiftSettings: checked
        ),
        .testTarget(
            name: "MoVQTests",
            dependencies: ["MoVQ", "MoVQIO", "movq", "MoVQKernelCore"],
            exclude: ["Fixtures"],
            swiftSettings: checked
        ),
    ]
)
