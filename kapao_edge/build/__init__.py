"""Building deployable files that need their target's toolchain: TensorRT plans."""
