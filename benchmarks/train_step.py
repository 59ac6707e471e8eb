"""Times one training step of a ResNet in minidl and in PyTorch, side by side (issues 4 and 5).

    python benchmarks/train_step.py --model resnet20 --device cpu --batch-size 128 --compare torch
    python benchmarks/train_step.py --model resnet18 --device cuda --precision bf16 --compare torch --profile
    python benchmarks/train_step.py --model resnet18 --device cuda --against-reference --compare none --profile

Both frameworks train the same network (the minidl model's initial weights are copied into the
PyTorch twin from benchmarks/torch_models.py) on the same random CIFAR-sized batch with
cross-entropy and SGD (momentum 0.9, weight decay 5e-4).  Warm-up steps are excluded; every step
is timed between device synchronisations and the median is reported, as images per second.
``--profile`` then runs a few more minidl steps under ``minidl.autograd.Profiler`` and prints the
forward/backward time of each op type.  The last line of output is one JSON object.

Precision: fp32 (TF32 off on both sides), tf32 (TF32 GEMMs/convolutions on both sides, GPU only),
bf16 (autocast: minidl.amp.autocast and torch.autocast with bfloat16; float32 master weights).

``--against-reference`` times minidl's device kernels (minidl/backends/) against its generic
reference code (``minidl.backends.reference()``: every op as written in minidl/functions/) in one
process, in alternating blocks, and with ``--profile`` prints the per-op table of both.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

PRECISIONS = ("fp32", "tf32", "bf16")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet18", help="a minidl.models name (resnet18, resnet20, ...)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=32, help="height and width of the random images (CIFAR: 32)")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS)
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--compare", default="torch", choices=("torch", "none"))
    parser.add_argument("--interleave", action="store_true",
                        help="also time minidl and PyTorch steps alternately and report the median per-pair ratio "
                             "(steadier on a shared machine whose load changes during the run)")
    parser.add_argument("--blocks", type=int, default=1,
                        help="split the timed steps into this many alternating blocks (minidl, PyTorch, minidl, "
                             "...), each after one untimed step: both frameworks run warm, and a change of "
                             "load during the run falls on both alike")
    parser.add_argument("--against-reference", action="store_true",
                        help="also time minidl's generic reference ops (minidl.backends.reference()) against its "
                             "device kernels, alternating blocks of steps, and report the speed-up")
    parser.add_argument("--profile", action="store_true", help="print minidl's per-op breakdown")
    parser.add_argument("--profile-steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads (PyTorch and BLAS)")
    parser.add_argument("--eval", action="store_true",
                        help="time inference instead of training: eval mode, no gradients, forward pass only")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: elapsed time per step; cpu: the process's CPU time per step (with --threads 1 "
                             "this leaves out the time other processes held the core: steadier on a busy machine, "
                             "but blind to waiting, so not for more than one thread)")
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.precision == "tf32" and args.device != "cuda":
        parser.error("--precision tf32 needs --device cuda (TF32 is a GPU tensor-core mode)")
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be >= 1 and --warmup >= 0")
    if not 1 <= args.blocks <= args.steps:
        parser.error("--blocks must be between 1 and --steps")
    if args.blocks > 1 and args.compare != "torch":
        parser.error("--blocks alternates minidl and PyTorch: it needs --compare torch")
    if args.clock == "cpu" and args.device != "cpu":
        parser.error("--clock cpu measures CPU work: it needs --device cpu")
    return args


def limit_blas_threads(threads):
    # Read by OpenBLAS/MKL/OpenMP when NumPy loads them, so set before the first `import numpy`.
    # MINIDL_NUM_THREADS: the threads minidl's CPU ops split a batch over (minidl/backends/cpu/threads.py)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "MINIDL_NUM_THREADS"):
        os.environ.setdefault(name, str(threads))


# ------------------------------------------------------------------ minidl
def minidl_setup(args, batch):
    import minidl
    from minidl import amp
    minidl.manual_seed(args.seed)
    model = minidl.models.get_model(args.model, num_classes=args.num_classes).to(args.device).train()
    initial_state = model.state_dict()  # CPU copies, for the PyTorch twin
    if args.eval:
        model.eval()
    optimizer = minidl.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    amp.set_tf32(args.precision == "tf32")
    x = minidl.tensor(batch[0]).to(args.device)
    y = minidl.tensor(batch[1]).to(args.device)
    loss_fn = minidl.nn.functional.cross_entropy

    def step(phase_times=None, reference=False):
        """One training step; with ``phase_times`` (a dict) each phase is timed, synchronised; with
        ``reference`` every op runs its generic reference instead of the device's kernels."""
        with minidl.backends.reference(reference):
            return _step(phase_times)

    def _step(phase_times):
        if args.eval:
            with minidl.no_grad(), amp.autocast(args.device, dtype="bfloat16", enabled=args.precision == "bf16"):
                return loss_fn(model(x), y)
        clock = _PhaseClock(phase_times, minidl.cuda.synchronize)
        optimizer.zero_grad()
        clock.lap("zero_grad")
        with amp.autocast(args.device, dtype="bfloat16", enabled=args.precision == "bf16"):
            logits = model(x)
        loss = loss_fn(logits, y)
        clock.lap("forward + loss")
        loss.backward()
        clock.lap("backward")
        optimizer.step()
        clock.lap("optimizer.step")
        return loss

    return step, minidl.cuda.synchronize, initial_state


class _PhaseClock:
    """Adds the seconds since the previous lap to ``times[name]`` (does nothing without ``times``)."""

    def __init__(self, times, synchronize):
        self.times, self.synchronize = times, synchronize
        if times is not None:
            synchronize()
            self.last = time.perf_counter()

    def lap(self, name):
        if self.times is None:
            return
        self.synchronize()
        now = time.perf_counter()
        self.times[name] = self.times.get(name, 0.0) + now - self.last
        self.last = now


# ------------------------------------------------------------------ PyTorch
def torch_setup(args, batch, initial_state):
    import torch
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch_models
    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = args.precision == "tf32"
    torch.backends.cudnn.allow_tf32 = args.precision == "tf32"
    torch.backends.cudnn.benchmark = True
    model = torch_models.load_minidl_weights(torch_models.build(args.model, args.num_classes), initial_state)
    model = model.to(args.device).train(not args.eval)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    x = torch.from_numpy(batch[0]).to(args.device)
    y = torch.from_numpy(batch[1]).to(args.device)

    def step():
        if args.eval:
            with torch.no_grad(), torch.autocast(args.device, dtype=torch.bfloat16,
                                                 enabled=args.precision == "bf16"):
                return torch.nn.functional.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        loss.backward()
        optimizer.step()
        return loss

    synchronize = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    return step, synchronize


# ------------------------------------------------------------------ timing
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]  # main() sets it from --clock


def time_steps(step, synchronize, warmup, steps):
    """(first loss, per-step seconds of the timed steps)."""
    first_loss = None
    for _ in range(warmup):
        loss = step()
        first_loss = float(loss.item()) if first_loss is None else first_loss
    times = []
    for _ in range(steps):
        synchronize()
        start = clock()
        loss = step()
        synchronize()
        times.append(clock() - start)
        first_loss = float(loss.item()) if first_loss is None else first_loss
    return first_loss, times


def interleaved_times(minidl_step, minidl_sync, torch_step, torch_sync, pairs):
    """(minidl seconds, PyTorch seconds) of ``pairs`` steps taken alternately, one of each per pair."""
    minidl_times, torch_times = [], []
    for _ in range(pairs):
        minidl_times.append(time_steps(minidl_step, minidl_sync, 0, 1)[1][0])
        torch_times.append(time_steps(torch_step, torch_sync, 0, 1)[1][0])
    return minidl_times, torch_times


def alternating_block_times(minidl_step, minidl_sync, torch_step, torch_sync, steps, blocks):
    """(minidl seconds, PyTorch seconds): ``blocks`` blocks of each, alternately, with ``steps`` timed
    steps in all per framework; each block starts with one untimed step (the other framework just ran)."""
    minidl_times, torch_times = [], []
    for block in range(blocks):
        count = steps * (block + 1) // blocks - steps * block // blocks
        minidl_times += time_steps(minidl_step, minidl_sync, 1, count)[1]
        torch_times += time_steps(torch_step, torch_sync, 1, count)[1]
    return minidl_times, torch_times


def kernels_against_reference(step, synchronize, steps, blocks, batch_size):
    """{"kernels_...", "reference_...", "kernels_speedup"}: minidl's step with its device kernels and with
    the generic reference ops, ``blocks`` alternating blocks of each (``steps`` timed steps per side)."""
    kernel_times, reference_times = [], []
    reference_step = lambda: step(reference=True)  # noqa: E731
    for block in range(blocks):
        count = steps * (block + 1) // blocks - steps * block // blocks
        kernel_times += time_steps(step, synchronize, 1, count)[1]
        reference_times += time_steps(reference_step, synchronize, 1, count)[1]
    result = {**summary("kernels", kernel_times, batch_size), **summary("reference", reference_times, batch_size)}
    result["kernels_speedup"] = result["kernels_img_per_s"] / result["reference_img_per_s"]
    return result


def profile_table(step, synchronize, profile_steps, reference=False):
    """(report text, rows) of minidl's per-op time, the device synchronised around every op."""
    import minidl
    with minidl.autograd.Profiler() as profiler:
        for _ in range(profile_steps):
            step(reference=reference)
        synchronize()
    rows = [{"op": op, "phase": phase, "ms_per_step": ms, "calls_per_step": calls}
            for op, phase, ms, calls in profiler.table(profile_steps)]
    return profiler.report(profile_steps), rows


def summary(name, times, batch_size):
    median = statistics.median(times)
    return {f"{name}_step_ms_median": 1000 * median, f"{name}_step_ms_min": 1000 * min(times),
            f"{name}_img_per_s": batch_size / median}


def environment(args):
    import numpy
    info = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "python": platform.python_version(), "numpy": numpy.__version__, "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "threads": args.threads, "clock": args.clock, "mode": "eval" if args.eval else "train",
            "cpu_model": _cpu_model(), "simd": _simd_flags()}
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        pass
    if args.device == "cuda":
        import cupy
        import minidl
        info["gpu"] = minidl.cuda.get_device_name()
        info["cupy"] = cupy.__version__
        info["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
    return info


def _cpu_model():
    """lscpu's model name (or /proc/cpuinfo's), '' where neither says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _simd_flags():
    """The CPU's AVX2/AVX-512/FMA flags from /proc/cpuinfo (Linux), as one string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                return " ".join(f for f in flags if f in ("fma", "avx2") or f.startswith("avx512"))
    except OSError:
        pass
    return ""


def main(argv=None):
    global clock
    args = parse_args(argv)
    clock = CLOCKS[args.clock]
    limit_blas_threads(args.threads)
    import numpy as np

    import minidl
    data = np.random.default_rng(args.seed)
    batch = (data.standard_normal((args.batch_size, 3, args.image_size, args.image_size)).astype(np.float32),
             data.integers(0, args.num_classes, args.batch_size).astype(np.int64))
    result = {"model": args.model, "device": args.device, "batch_size": args.batch_size, "image_size": args.image_size,
              "precision": args.precision, "steps": args.steps, "warmup": args.warmup}
    result.update(environment(args))

    step, synchronize, initial_state = minidl_setup(args, batch)
    minidl.cuda.reset_peak_memory_stats()
    loss, times = time_steps(step, synchronize, args.warmup, args.steps if args.blocks == 1 else 1)
    if args.blocks > 1:  # both frameworks set up and warm first, then the alternating blocks
        import torch
        torch_step, torch_synchronize = torch_setup(args, batch, initial_state)
        torch_loss = time_steps(torch_step, torch_synchronize, args.warmup, 1)[0]
        times, torch_times = alternating_block_times(step, synchronize, torch_step, torch_synchronize, args.steps,
                                                     args.blocks)
    result.update(summary("minidl", times, args.batch_size), minidl_first_loss=loss)
    if args.device == "cuda":
        result["minidl_peak_memory_mb"] = minidl.cuda.max_memory_reserved() / 2**20
        result["minidl_memory_in_use_mb"] = minidl.cuda.memory_allocated() / 2**20
    what = f"{args.model} {args.device} {args.precision} batch {args.batch_size}" + (" eval" if args.eval else "")
    print(f"minidl  {what}: "
          f"{result['minidl_img_per_s']:8.1f} img/s  (median step {result['minidl_step_ms_median']:.1f} ms, "
          f"first loss {loss:.4f})")

    if args.compare == "torch":
        import torch
        if args.blocks == 1:
            torch_step, torch_synchronize = torch_setup(args, batch, initial_state)
            if args.device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            torch_loss, torch_times = time_steps(torch_step, torch_synchronize, args.warmup, args.steps)
        loss = torch_loss
        result.update(summary("torch", torch_times, args.batch_size), torch_first_loss=loss, blocks=args.blocks)
        if args.device == "cuda":
            result["torch_peak_memory_mb"] = torch.cuda.max_memory_reserved() / 2**20
            result["torch_peak_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
        result["ratio"] = result["minidl_img_per_s"] / result["torch_img_per_s"]
        print(f"PyTorch {what}: "
              f"{result['torch_img_per_s']:8.1f} img/s  (median step {result['torch_step_ms_median']:.1f} ms, "
              f"first loss {loss:.4f})")
        how = f", {args.blocks} alternating blocks" if args.blocks > 1 else ""
        print(f"minidl / PyTorch = {result['ratio']:.3f}x  (ratio of median steps{how})")
        if args.interleave:
            minidl_times, torch_times = interleaved_times(step, synchronize, torch_step, torch_synchronize, args.steps)
            ratios = [t / m for m, t in zip(minidl_times, torch_times)]
            result.update(interleaved_ratio_median=statistics.median(ratios),
                          interleaved_minidl_step_ms_median=1000 * statistics.median(minidl_times),
                          interleaved_torch_step_ms_median=1000 * statistics.median(torch_times))
            print(f"interleaved ({args.steps} pairs): median step minidl "
                  f"{result['interleaved_minidl_step_ms_median']:.1f} ms, PyTorch "
                  f"{result['interleaved_torch_step_ms_median']:.1f} ms; median per-pair ratio "
                  f"{result['interleaved_ratio_median']:.3f}x")
    if args.device == "cuda":
        line = f"peak GPU memory: minidl {result['minidl_peak_memory_mb']:.0f} MiB (pool)"
        if "torch_peak_memory_mb" in result:
            line += f", PyTorch {result['torch_peak_memory_mb']:.0f} MiB reserved"
        print(line)

    if args.against_reference:
        result.update(kernels_against_reference(step, synchronize, args.steps, max(args.blocks, 2), args.batch_size))
        print(f"minidl kernels {result['kernels_img_per_s']:8.1f} img/s, generic reference "
              f"{result['reference_img_per_s']:8.1f} img/s: kernels {result['kernels_speedup']:.2f}x "
              f"(median steps, alternating blocks)")

    if args.profile:
        phase_times = {}
        for _ in range(args.profile_steps):
            step(phase_times)
        print(f"\nminidl step phases (ms per step, {args.profile_steps} steps):")
        for name, seconds in phase_times.items():
            print(f"  {name:<18}{1000 * seconds / args.profile_steps:>10.2f}")
        report, result["profile"] = profile_table(step, synchronize, args.profile_steps)
        print(f"\nminidl per-op time (ms per step, {args.profile_steps} steps, device synchronised per op):")
        print(report)
        result["phases_ms"] = {name: 1000 * seconds / args.profile_steps for name, seconds in phase_times.items()}
        if args.against_reference:
            report, result["reference_profile"] = profile_table(step, synchronize, args.profile_steps, reference=True)
            print("\nminidl per-op time with the generic reference ops (minidl.backends.reference()):")
            print(report)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
