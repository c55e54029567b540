// swift-tools-version: 6.0
//
// Tools-only package used by Scripts/generate-xds-types to build the pinned
// protoc-gen-swift plugin:
//
//   swift build -c release --product protoc-gen-swift \
//       --package-path Scripts/codegen --scratch-path .build-codegen/swift
//
// It has no targets of its own; it exists only to pin swift-protobuf. It is not
// part of the Sluice product build.
import PackageDescription

let package = Package(
    name: "SluiceCodegenTools",
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
    ],
    targets: []
)
