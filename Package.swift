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
    // AVX2 with other tiers' vector widths: tests check outputs do not depend on the width.
    .target(name: "MoVQKernelsLaneEmulation", dependencies: ["MoVQKernelCore"],
            swiftSettings: unchecked + [.unsafeFlags(["-target-cpu", "haswell"])]),
]
let tierDependencies: [Target.Dependency] = ["MoVQKernelsAVX512VNNI", "MoVQKernelsAVX512", "MoVQKernelsAVX2", "MoVQKernelsLaneEmulation"]
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
        // The HTTP server is its own product: building `movq` never builds the HTTP stack.
        .executable(name: "movq-server", targets: ["movq-server"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // movq-server only.
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: tierTargets + [
        .target(name: "CPUFeatures"),
        .target(name: "MoVQKernelCore", swiftSettings: unchecked, linkerSettings: [.linkedLibrary("m")]),
        // Parsers, file formats, checkpoint import, image/npy I/O, configs.
        // CRC-32 by carry-less multiplication (PCLMULQDQ), for checking large files fast.
        .target(name: "CRC32Fold"),
        .target(name: "MoVQIO", dependencies: ["CRC32Fold", "MoVQKernelCore"], swiftSettings: checked),
        .target(
            name: "MoVQ",
            dependencies: ["CPUFeatures", "MoVQIO", "MoVQKernelCore"] + tierDependencies,
            swiftSettings: unchecked,
            linkerSettings: [.linkedLibrary("m")]
        ),
        // The demo model, prior and images both executables ship.
        .target(
            name: "MoVQDemo",
            dependencies: ["MoVQ"],
            resources: [.copy("Resources/demo.mvq"), .copy("Resources/demo-prior.mvq"), .copy("Resources/demo_images")],
            swiftSettings: checked
        ),
        .executableTarget(
            name: "movq",
            dependencies: ["MoVQ", "MoVQDemo", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: checked
        ),
        // The edge server: routes, bounded queue, batching scheduler, metrics (a library so tests drive it in process).
        .target(
            name: "MoVQServer",
            dependencies: [
                "MoVQ", "MoVQDemo",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: checked
        ),
        .executableTarget(
            name: "movq-server",
            dependencies: ["MoVQServer", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: checked
        ),
        .testTarget(
            name: "MoVQServerTests",
            dependencies: ["MoVQServer", "MoVQDemo", .product(name: "HummingbirdTesting", package: "hummingbird"),
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            swiftSettings: checked
        ),
        .testTarget(
            name: "MoVQTests",
            dependencies: ["MoVQ", "MoVQIO", "MoVQDemo", "movq", "MoVQKernelCore"],
            exclude: ["Fixtures"],
            swiftSettings: checked
        ),
    ]
)
