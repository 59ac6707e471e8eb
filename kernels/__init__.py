"""CUDA C sources of minidl's GPU kernels; installed as the package ``minidl.kernels``."""
