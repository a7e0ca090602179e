// swift-tools-version: 6.1
//
// Examples of building on SwiftDDP as a library, in a package of their own that depends on the
// repository's root package by path, as yours would (by URL). Each executable is built and run
// under mpirun by the test suite (Tests/SwiftDDPExampleTests/ExampleTests.swift).
//   custom-loop    a residual MLP defined here, trained with a hand-written loop and
//                  DistributedDataParallel (SyncBN, the 1/W scale, the update)
//   custom-layer   a layer written against the Layer protocol, checked with GradientCheck and
//                  trained inside a model
import PackageDescription

let package = Package(
    name: "SwiftDDPExamples",
    dependencies: [
        // The root package under the name its product is looked up with, whatever the clone's directory.
        .package(name: "SwiftDDP", path: ".."),
    ],
    targets: [
        .executableTarget(name: "custom-loop", dependencies: [.product(name: "SwiftDDP", package: "SwiftDDP")]),
        .executableTarget(name: "custom-layer", dependencies: [.product(name: "SwiftDDP", package: "SwiftDDP")]),
    ]
)
