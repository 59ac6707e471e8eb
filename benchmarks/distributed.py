"""Data-parallel scaling on this machine: images/s of 1 and 2 processes at the same total batch, minidl
(DistributedDataParallel over MPI) and PyTorch (DistributedDataParallel over gloo) side by side (issue 14).

    python benchmarks/distributed.py --model resnet18 --total-batch 64 --rounds 3       # the table
    mpirun -np 2 python benchmarks/distributed.py --worker minidl --total-batch 64       # one measurement

The driver runs the configurations alternately (minidl 1, minidl 2, PyTorch 1, PyTorch 2, then again
``--rounds`` times), so that a change of load on a shared machine falls on all of them alike, and reports
the median of each. One process uses ``--cores`` threads; each of P processes uses cores / P threads (and
mpirun binds each to its own core), so both use the same cores. Each worker trains on one random
CIFAR-sized batch, per process total / P images, with cross-entropy and SGD; one process trains the
bare model, several the DDP-wrapped one. After ``--warmup`` steps, ``--steps`` steps are timed between
barriers. Then the worker times the all-reduce of one step's gradients alone (the communication volume
per step: every parameter's gradient, 4 bytes each), and with ``--sync-bn`` it converts BatchNorm to
SyncBatchNorm. The last line is one JSON object with every number.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", choices=("minidl", "torch"), help="run one measurement (under mpirun)")
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--total-batch", type=int, default=64, help="images per step over all processes")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="driver: alternating rounds")
    parser.add_argument("--processes", default="1,2", help="driver: process counts to compare")
    parser.add_argument("--frameworks", default="minidl,torch", help="driver: minidl, torch or both")
    parser.add_argument("--cores", type=int, default=os.cpu_count())
    parser.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm instead of BatchNorm (minidl)")
    parser.add_argument("--transport", default="sm", choices=("sm", "tcp"),
                        help="driver: Open MPI's shared-memory transport, or TCP over loopback")
    return parser.parse_args(argv)


# ------------------------------------------------------------------ one measurement (each process)
def launcher_rank_and_size():
    for rank, size in (("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"), ("PMI_RANK", "PMI_SIZE")):
        if rank in os.environ:
            return int(os.environ[rank]), int(os.environ[size])
    return 0, 1


def random_batch(args, rank, world, np):
    rng = np.random.default_rng(rank)
    share = args.total_batch // world
    return (rng.standard_normal((share, 3, 32, 32)).astype(np.float32),
            rng.integers(0, 10, size=share).astype(np.int64))


def minidl_worker(args):
    import numpy as np

    import minidl
    import minidl.distributed as dist
    from minidl.nn import functional as F
    _, world = launcher_rank_and_size()
    if world > 1:
        dist.init_process_group("mpi")
    rank = dist.get_rank() if world > 1 else 0
    minidl.manual_seed(0)
    model = minidl.models.get_model(args.model, num_classes=10)
    if args.sync_bn:
        model = minidl.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    parameters = list(model.parameters())
    if world > 1:
        model = minidl.nn.parallel.DistributedDataParallel(model)
    optimizer = minidl.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    images, labels = (minidl.tensor(a) for a in random_batch(args, rank, world, np))

    def step():
        optimizer.zero_grad()
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()
    barrier = dist.barrier if world > 1 else (lambda: None)
    seconds = timed_steps(args, step, barrier)
    gradient_bytes = sum(p.array.nbytes for p in parameters)
    allreduce = None
    if world > 1:
        flat = np.ones(gradient_bytes // 4, dtype=np.float32)
        times = []
        for _ in range(4):
            barrier()
            started = time.perf_counter()
            dist.all_reduce(minidl.Tensor._from_array(flat))
            times.append(time.perf_counter() - started)
        allreduce = statistics.median(times[1:])
    report(args, rank, world, "minidl", seconds, gradient_bytes, allreduce)


def torch_worker(args):
    import numpy as np
    import torch
    import torch.distributed as dist
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import torch_models
    torch.set_num_threads(int(os.environ.get("MINIDL_NUM_THREADS", args.cores)))
    rank, world = launcher_rank_and_size()
    if world > 1:
        os.environ.update(RANK=str(rank), WORLD_SIZE=str(world))
        dist.init_process_group("gloo", init_method="env://")
    torch.manual_seed(0)
    model = torch_models.build(args.model, 10)
    gradient_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    images, labels = (torch.from_numpy(a) for a in random_batch(args, rank, world, np))

    def step():
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    barrier = dist.barrier if world > 1 else (lambda: None)
    seconds = timed_steps(args, step, barrier)
    allreduce = None
    if world > 1:
        flat, times = torch.ones(gradient_bytes // 4), []
        for _ in range(4):
            barrier()
            started = time.perf_counter()
            dist.all_reduce(flat)
            times.append(time.perf_counter() - started)
        allreduce = statistics.median(times[1:])
        dist.barrier()  # no rank tears gloo down while another still uses it
        dist.destroy_process_group()
    report(args, rank, world, "torch", seconds, gradient_bytes, allreduce)


def timed_steps(args, step, barrier):
    for _ in range(args.warmup):
        step()
    barrier()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    barrier()
    return time.perf_counter() - started


def report(args, rank, world, framework, seconds, gradient_bytes, allreduce):
    if rank == 0:
        print(json.dumps({"framework": framework, "processes": world, "model": args.model,
                          "total_batch": args.total_batch, "sync_bn": args.sync_bn,
                          "images_per_s": round(args.total_batch * args.steps / seconds, 1),
                          "step_s": round(seconds / args.steps, 4), "gradient_bytes": gradient_bytes,
                          "allreduce_s": None if allreduce is None else round(allreduce, 4)}), flush=True)


# ------------------------------------------------------------------ the driver
def run_one(args, framework, processes, threads):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               MASTER_ADDR="127.0.0.1", MASTER_PORT="29533")
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "MINIDL_NUM_THREADS",
                 "NUMBA_NUM_THREADS"):
        env[name] = str(threads)
    if args.transport == "tcp":
        env.update(OMPI_MCA_btl="self,tcp", OMPI_MCA_btl_tcp_if_include="lo")
    command = [sys.executable, __file__, "--worker", framework, "--model", args.model,
               "--total-batch", str(args.total_batch), "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--cores", str(args.cores)] + (["--sync-bn"] if args.sync_bn else [])
    if processes > 1:
        beside_python = os.path.join(os.path.dirname(sys.executable), "mpiexec")  # Open MPI's PyPI wheel
        launcher = beside_python if os.access(beside_python, os.X_OK) else shutil.which("mpiexec")
        command = [launcher, "-n", str(processes), "--bind-to", "core", "--map-by", "core"] + command
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]  # mpirun adds colour codes
    if result.returncode != 0 or not lines:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return json.loads(lines[-1])


def driver(args):
    counts = [int(p) for p in args.processes.split(",")]
    frameworks = args.frameworks.split(",")
    runs = {}
    for round_index in range(args.rounds):
        for framework in frameworks:
            for processes in counts:
                result = run_one(args, framework, processes, max(1, args.cores // processes))
                runs.setdefault((framework, processes), []).append(result)
                print(f"round {round_index + 1}: {framework:6s} {processes} process(es): "
                      f"{result['images_per_s']:7.1f} img/s"
                      + (f", all-reduce of {result['gradient_bytes'] / 1e6:.1f} MB: {result['allreduce_s']:.3f} s"
                         if result["allreduce_s"] is not None else ""), flush=True)
    summary = []
    for (framework, processes), results in runs.items():
        median = statistics.median(r["images_per_s"] for r in results)
        base = statistics.median(r["images_per_s"] for r in runs[(framework, counts[0])])
        allreduce = [r["allreduce_s"] for r in results if r["allreduce_s"] is not None]
        summary.append({"framework": framework, "processes": processes, "images_per_s": median,
                        "all_runs": [r["images_per_s"] for r in results], "speedup": round(median / base, 3),
                        "gradient_bytes": results[0]["gradient_bytes"],
                        "allreduce_s": statistics.median(allreduce) if allreduce else None})
        print(f"{framework:6s} {processes} process(es): median {median:7.1f} img/s, x{median / base:.2f}")
    print(json.dumps({"date": datetime.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
                      "cores": args.cores, "model": args.model, "total_batch": args.total_batch,
                      "steps": args.steps, "rounds": args.rounds, "transport": args.transport,
                      "sync_bn": args.sync_bn, "python": platform.python_version(), "results": summary}))


def main():
    args = parse_args()
    if args.worker == "minidl":
        minidl_worker(args)
    elif args.worker == "torch":
        torch_worker(args)
    else:
        driver(args)


if __name__ == "__main__":
    main()
