/// `import MoVQ` also brings the file formats, checkpoint conversion, image
/// and npy I/O, tensors, index maps and errors (the `MoVQIO` module); the
/// kernels stay internal (`KernelTier` names a tier).
@_exported import MoVQIO
