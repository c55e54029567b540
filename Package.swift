// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    // Dynamic exclusivity checks cost a runtime call per access on the data path; the
    // compile-time checks stay.
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

/// A second build of the same sources for the hot-upgrade tests, which alternate two builds.
let variantSettings: [SwiftSetting] = Context.environment["SLUICE_BUILD_VARIANT"] == "B" ? [.define("SLUICE_BUILD_VARIANT_B")] : []

let package = Package(
    name: "Sluice",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sluice", targets: ["sluice"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
    ],
    targets: [
        .target(name: "CSluiceLinux"),
        // libbpf (Debian libbpf-dev) for the eBPF capture mode.
        .target(name: "CBPF", linkerSettings: [.linkedLibrary("bpf")]),
        .plugin(name: "BPFObjectBuilder", capability: .buildTool()),
        // bpf/sluice_capture.bpf.c, compiled by the build for the running kernel and embedded.
        .target(name: "SluiceBPFPrograms", plugins: ["BPFObjectBuilder"]),
        .target(name: "CGenericNetlink", linkerSettings: [.linkedLibrary("mnl")]),
        .systemLibrary(name: "CNetlink", pkgConfig: "libnftnl", providers: [.apt(["libnftnl-dev", "libmnl-dev"])]),
        .target(name: "SluiceLinux", dependencies: ["CSluiceLinux"], swiftSettings: swiftSettings),
        .target(name: "SluiceModel", swiftSettings: swiftSettings),
        .target(
            name: "SluiceXDSTypes",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
        .target(
            name: "SluiceConfig",
            dependencies: [
                "SluiceModel", "SluiceXDSTypes",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SluiceProxy",
            dependencies: [
                "SluiceModel", "SluiceLinux", "CSluiceLinux",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SluiceInterception",
            dependencies: [
                "SluiceModel", "SluiceLinux", "CNetlink", "CGenericNetlink", "CBPF", "SluiceBPFPrograms",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SluiceNode",
            dependencies: [
                "SluiceInterception", "SluiceModel", "SluiceLinux",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SluiceAdmin",
            dependencies: [
                "SluiceProxy", "SluiceConfig", "SluiceModel", "SluiceXDSTypes",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SluiceUpgrade",
            dependencies: [
                "SluiceLinux", "SluiceModel", "SluiceProxy",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "sluice",
            dependencies: [
                "SluiceModel", "SluiceLinux", "SluiceConfig", "SluiceProxy", "SluiceInterception", "SluiceNode", "SluiceAdmin",
                "SluiceUpgrade",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings + variantSettings
        ),
        .testTarget(
            name: "SluiceUpgradeTests", dependencies: ["SluiceUpgrade", "SluiceProxy", "SluiceModel"], swiftSettings: swiftSettings),
        .testTarget(name: "SluiceModelTests", dependencies: ["SluiceModel"], swiftSettings: swiftSettings),
        .testTarget(
            name: "SluiceConfigTests",
            dependencies: ["SluiceConfig", "SluiceModel", "SluiceXDSTypes"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SluiceProxyTests",
            dependencies: [
                "SluiceProxy", "SluiceModel",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SluiceInterceptionTests",
            dependencies: ["SluiceInterception", "SluiceModel"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SluiceNodeTests",
            dependencies: ["SluiceNode", "SluiceModel", "SluiceInterception", "SluiceLinux"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SluiceAdminTests",
            dependencies: [
                "SluiceAdmin", "SluiceProxy", "SluiceModel", "SluiceConfig", "SluiceXDSTypes",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SluiceEndToEndTests",
            dependencies: ["SluiceModel", "CSluiceLinux"],
            resources: [.copy("Tools")],
            swiftSettings: swiftSettings
        ),
    ]
)
