@_exported import MoVQKernelCore
@_exported import MoVQIO
