// swift-tools-version: 6.0
//
// Tools-only package used by Scripts/generate-xds-types to build the pinned
// protoc-gen-swift and protoc-gen-grpc-swift-2 plugins:
//
//   swift build -c release --product protoc-gen-swift \
//       --package-path Scripts/codegen --scratch-path .build-codegen/swift
//
// It has no targets of its own; it exists only to pin swift-protobuf and
// grpc-swift-protobuf. It is not part of the Sluice product build.
import PackageDescription

let package = Package(
    name: "SluiceCodegenTools",
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", exact: "2.4.1"),
    ],
    targets: []
)
