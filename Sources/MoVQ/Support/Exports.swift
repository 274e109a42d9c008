@_exported import MoVQKernelCore
