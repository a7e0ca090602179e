// swift-tools-version: 6.1
//
// SwiftDDP: distributed data-parallel training with synchronized batch normalization, on MPI.
// Targets, bottom-up (Docs/architecture.md explains each):
//   CMPI, COpenBLAS, CZlib   C system libraries found with pkg-config (ompi-c, openblas, zlib)
//   CConvolution             Conv2d forward/backward over oneDNN (NHWC activations, OIHW weights)
//   CKernels                 the step's element-wise and per-channel loops (SGD, BatchNorm, ReLU) in C,
//                            cloned per x86-64 level and picked at load time; the rank-to-rank probe
//   MPI                      Swift bindings for Open MPI: errors, communicators, typed collectives
//   Collectives              the ProcessGroup seam: MPI-backed and in-process (test) implementations
//   BLAS                     thin typed wrapper over CBLAS (sgemm and the level-1 calls)
//   SafeTensors              the safetensors checkpoint format, validated
//   NN                       layers with forward/backward, BatchNorm/SyncBN, losses, optimizers
//   Datasets                 IDX (gzip) reader, Fashion-MNIST, synthetic data
//   Training                 DistributedSampler, gradient synchronization, the Trainer, diagnostics
//   Study                    the study grids (vanishing gradients, SyncBN), reports and figures
//   ddp, mpi-selftest        executables
import PackageDescription

let package = Package(
    name: "SwiftDDP",
    products: [
        .executable(name: "ddp", targets: ["ddp"]),
        .executable(name: "mpi-selftest", targets: ["mpi-selftest"]),
        .executable(name: "ddp-alloc-check", targets: ["ddp-alloc-check"]),
        .library(name: "SwiftDDP", targets: ["MPI", "Collectives", "BLAS", "NN", "SafeTensors", "Datasets", "Training", "Study"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.0.0"),
        .package(url: "https://github.com/ordo-one/malloc-interposer", from: "1.6.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev"])]),
        .systemLibrary(
            name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(
            name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]),

        .target(name: "CKernels"),
        // Convolutions through oneDNN (Debian's libdnnl-dev ships no pkg-config file).
        .target(name: "CConvolution", linkerSettings: [.linkedLibrary("dnnl")]),
        .target(name: "MPI", dependencies: ["CMPI"]),
        .target(name: "Collectives", dependencies: ["MPI", "CKernels"]),
        .target(name: "BLAS", dependencies: ["COpenBLAS"]),
        .target(name: "SafeTensors"),
        .target(
            name: "NN",
            dependencies: [
                "BLAS", "CConvolution", "CKernels", "Collectives", "SafeTensors",
                .product(name: "RealModule", package: "swift-numerics"),
            ]),
        .target(name: "Datasets", dependencies: ["CZlib", "NN", "SafeTensors"]),
        .target(name: "Training", dependencies: ["BLAS", "CKernels", "Collectives", "NN", "Datasets", "SafeTensors"]),
        .target(name: "Study", dependencies: ["Collectives", "NN", "Datasets", "Training"]),

        .executableTarget(
            name: "ddp",
            dependencies: [
                "MPI", "Collectives", "BLAS", "NN", "Datasets", "SafeTensors", "Training", "Study",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(name: "mpi-selftest", dependencies: ["MPI", "Collectives", "NN"]),
        // Counts heap allocations in steady-state training steps; run with the interposer
        // preloaded (scripts/bench.sh does): LD_PRELOAD=.build/release/libMallocInterposerSwift.so
        .executableTarget(
            name: "ddp-alloc-check",
            dependencies: [
                "MPI", "Collectives", "NN", "Datasets", "Training",
                .product(name: "MallocInterposerSwift", package: "malloc-interposer"),
            ]),

        .testTarget(
            name: "SwiftDDPTests",
            dependencies: ["MPI", "Collectives", "BLAS", "NN", "SafeTensors", "Datasets", "Training", "Study", "CZlib"]),
    ]
)
