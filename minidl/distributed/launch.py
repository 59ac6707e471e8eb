"""Who launched this process, as which rank: the environment variables that ``mpirun`` (Open MPI,
MPICH/Hydra), Slurm's ``srun`` and ``torchrun`` set for each process they start."""
import os

# (launcher, rank variable, world-size variable, node-local-rank variable), most specific first
LAUNCHERS = (
    ("Open MPI's mpirun", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),
    ("MPICH's mpiexec (Hydra)", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"),
    ("Slurm's srun", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"),
    ("torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"),
)


def launched_by():
    """``(launcher name, rank, world size, node-local rank or None)`` from the environment, or
    None when no known launcher started this process."""
    for name, rank, size, local in LAUNCHERS:
        if rank in os.environ and size in os.environ:
            local_rank = os.environ.get(local)
            return name, int(os.environ[rank]), int(os.environ[size]), None if local_rank is None else int(local_rank)
    return None


def started_by_mpi():
    """True when an MPI launcher (or Slurm, which starts MPI programs) started this process."""
    found = launched_by()
    return found is not None and found[0] != "torchrun"


def node_local_rank(fallback_rank=None):
    """This process's index among the processes of its machine (the GPU it should use), as
    ``torch.distributed.get_node_local_rank``: from the launcher's variable, else ``fallback_rank``."""
    found = launched_by()
    if found is not None and found[3] is not None:
        return found[3]
    if fallback_rank is not None:
        return int(fallback_rank)
    raise RuntimeError("the node-local rank is not in the environment (no OMPI_COMM_WORLD_LOCAL_RANK, "
                       "MPI_LOCALRANKID, SLURM_LOCALID or LOCAL_RANK); pass fallback_rank")
