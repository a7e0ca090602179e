// The SwiftDDP library in one import: `import SwiftDDP` brings the MPI runtime and process groups,
// the layers, models, losses and optimizers, data sets, checkpoints and the Trainer
// (Docs/library.md). The modules stay separate so that each builds and tests on its own.
@_exported import SwiftDDPBLAS
@_exported import SwiftDDPCollectives
@_exported import SwiftDDPDatasets
@_exported import SwiftDDPMPI
@_exported import SwiftDDPNN
@_exported import SwiftDDPSafeTensors
@_exported import SwiftDDPTraining
