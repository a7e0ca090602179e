// swift-tools-version: 6.1
//
// SwiftDDP: distributed data-parallel training with synchronized batch normalization, on MPI.
// Module names carry the package's name, so they cannot collide in a user's package graph.
// Targets, bottom-up (Docs/architecture.md explains each):
//   CSwiftDDPMPI, CSwiftDDPOpenBLAS, CSwiftDDPZlib
//                            C system libraries found with pkg-config (ompi-c, openblas, zlib)
//   CSwiftDDPConvolution     Conv2d forward/backward over oneDNN (NHWC activations, OIHW weights); an arena
//                            that keeps oneDNN's per-call bookkeeping off the heap (replaces operator new)
//   CSwiftDDPKernels         the step's element-wise and per-channel loops (SGD, BatchNorm, ReLU) in C,
//                            cloned per x86-64 level and picked at load time; the rank-to-rank probe
//   SwiftDDPMPI              Swift bindings for Open MPI: errors, communicators, typed collectives
//   SwiftDDPCollectives      the ProcessGroup seam: MPI-backed and in-process (test) implementations
//   SwiftDDPBLAS             thin typed wrapper over CBLAS (sgemm and the level-1 calls)
//   SwiftDDPSafeTensors      the safetensors checkpoint format, validated
//   SwiftDDPNN               layers with forward/backward, BatchNorm/SyncBN, losses, optimizers
//   SwiftDDPDatasets         IDX (gzip) reader, Fashion-MNIST, tensor files, synthetic data
//   SwiftDDPTraining         DistributedSampler, gradient synchronization, the Trainer, diagnostics
//   SwiftDDP                 the library: one `import SwiftDDP` re-exports the modules above
//   SwiftDDPStudy            the study grids, reports and figures (the ddp tool's; not in the library)
//   ddp, mpi-selftest, ddp-alloc-check   executables
import PackageDescription

let package = Package(
    name: "SwiftDDP",
    products: [
        .executable(name: "ddp", targets: ["ddp"]),
        .executable(name: "mpi-selftest", targets: ["mpi-selftest"]),
        .executable(name: "ddp-alloc-check", targets: ["ddp-alloc-check"]),
        .library(name: "SwiftDDP", targets: ["SwiftDDP"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.0.0"),
        .package(url: "https://github.com/ordo-one/malloc-interposer", from: "1.6.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CSwiftDDPMPI", path: "Sources/CSwiftDDPMPI", pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev"])]),
        .systemLibrary(
            name: "CSwiftDDPOpenBLAS", path: "Sources/CSwiftDDPOpenBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(
            name: "CSwiftDDPZlib", path: "Sources/CSwiftDDPZlib", pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]),

        .target(name: "CSwiftDDPKernels"),
        // Convolutions through oneDNN (Debian's libdnnl-dev ships no pkg-config file).
        // Weight gradients of 3×3 stride-1 layers by Winograd, its products in OpenBLAS.
        .target(name: "CSwiftDDPConvolution", dependencies: ["CSwiftDDPOpenBLAS"],
                linkerSettings: [.linkedLibrary("dnnl")]),
        .target(name: "SwiftDDPMPI", dependencies: ["CSwiftDDPMPI"]),
        .target(name: "SwiftDDPCollectives", dependencies: ["SwiftDDPMPI", "CSwiftDDPKernels"]),
        .target(name: "SwiftDDPBLAS", dependencies: ["CSwiftDDPOpenBLAS"]),
        .target(name: "SwiftDDPSafeTensors"),
        .target(
            name: "SwiftDDPNN",
            dependencies: [
                "SwiftDDPBLAS", "CSwiftDDPConvolution", "CSwiftDDPKernels", "SwiftDDPCollectives",
                "SwiftDDPSafeTensors",
                .product(name: "RealModule", package: "swift-numerics"),
            ]),
        .target(name: "SwiftDDPDatasets", dependencies: ["CSwiftDDPZlib", "SwiftDDPNN", "SwiftDDPSafeTensors"]),
        .target(
            name: "SwiftDDPTraining",
            dependencies: [
                "SwiftDDPBLAS", "CSwiftDDPKernels", "SwiftDDPCollectives", "SwiftDDPNN", "SwiftDDPDatasets",
                "SwiftDDPSafeTensors",
            ]),
        .target(
            name: "SwiftDDP",
            dependencies: [
                "SwiftDDPMPI", "SwiftDDPCollectives", "SwiftDDPBLAS", "SwiftDDPNN", "SwiftDDPSafeTensors",
                "SwiftDDPDatasets", "SwiftDDPTraining",
            ]),
        .target(
            name: "SwiftDDPStudy",
            dependencies: ["SwiftDDPCollectives", "SwiftDDPNN", "SwiftDDPDatasets", "SwiftDDPTraining"]),

        .executableTarget(
            name: "ddp",
            dependencies: [
                "SwiftDDPMPI", "SwiftDDPCollectives", "SwiftDDPBLAS", "SwiftDDPNN", "SwiftDDPDatasets",
                "SwiftDDPSafeTensors", "SwiftDDPTraining", "SwiftDDPStudy",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(name: "mpi-selftest", dependencies: ["SwiftDDPMPI", "SwiftDDPCollectives", "SwiftDDPNN"]),
        // Counts heap allocations in steady-state training steps; run with the interposer
        // preloaded (scripts/bench.sh does): LD_PRELOAD=.build/release/libMallocInterposerSwift.so
        .executableTarget(
            name: "ddp-alloc-check",
            dependencies: [
                "SwiftDDPMPI", "SwiftDDPCollectives", "SwiftDDPNN", "SwiftDDPDatasets", "SwiftDDPTraining",
                .product(name: "MallocInterposerSwift", package: "malloc-interposer"),
            ]),

        // Tests: unit (in-process; ranks are threads), end-to-end (the executables under mpirun,
        // simulated nodes, PyTorch comparisons) and the Examples/ package; shared helpers.
        .target(
            name: "SwiftDDPTestSupport",
            dependencies: ["SwiftDDPNN", "SwiftDDPSafeTensors", "SwiftDDPDatasets", "CSwiftDDPZlib"],
            path: "Tests/SwiftDDPTestSupport"),
        .testTarget(
            name: "SwiftDDPUnitTests",
            dependencies: [
                "SwiftDDPTestSupport", "SwiftDDP", "SwiftDDPMPI", "SwiftDDPCollectives", "SwiftDDPBLAS", "SwiftDDPNN",
                "SwiftDDPSafeTensors", "SwiftDDPDatasets", "SwiftDDPTraining", "SwiftDDPStudy", "CSwiftDDPZlib",
                "ddp",  // its flag table (ConfigurationErrorTests)
            ]),
        .testTarget(
            name: "SwiftDDPEndToEndTests",
            dependencies: [
                "SwiftDDPTestSupport", "SwiftDDPMPI", "SwiftDDPCollectives", "SwiftDDPNN", "SwiftDDPSafeTensors",
                "SwiftDDPDatasets", "SwiftDDPTraining", "SwiftDDPStudy",
            ]),
        .testTarget(name: "SwiftDDPExampleTests", dependencies: ["SwiftDDPTestSupport"]),
    ],
    cxxLanguageStandard: .cxx17  // arena.cpp's aligned operator new
)
