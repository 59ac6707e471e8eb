"""Start-up: the import and the first training step of a new process, minidl against PyTorch.

    python benchmarks/first_step.py --model resnet20 --batch-size 128 --threads 2 --repeats 3

Each measurement is a fresh Python process that imports the framework, builds the model and an SGD
optimizer, and times its first training step (forward, loss, backward, update) and its second (the
difference is what the first step pays to start: numba loading its compiled kernels from the on-disk
cache, PyTorch initialising its kernels). minidl and PyTorch processes alternate; the medians are
reported. The last line is one JSON object.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=("minidl", "torch"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def child(args):
    """Runs in the fresh process: prints {"import_s", "first_step_s", "second_step_s"} as JSON."""
    start = time.perf_counter()
    import numpy as np
    batch = np.random.default_rng(0)
    x = batch.standard_normal((args.batch_size, 3, 32, 32)).astype(np.float32)
    y = batch.integers(0, 10, args.batch_size)
    if args.child == "minidl":
        import minidl
        imported = time.perf_counter()
        model = minidl.models.get_model(args.model)
        optimizer = minidl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        inputs, targets, loss_fn = minidl.tensor(x), minidl.tensor(y), minidl.nn.functional.cross_entropy
    else:
        import torch
        imported = time.perf_counter()
        torch.set_num_threads(args.threads)
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import torch_models
        model = torch_models.build(args.model)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        inputs, targets, loss_fn = torch.from_numpy(x), torch.from_numpy(y), torch.nn.functional.cross_entropy

    def step():
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()

    times = []
    for _ in range(2):
        begin = time.perf_counter()
        step()
        times.append(time.perf_counter() - begin)
    print(json.dumps({"import_s": imported - start, "first_step_s": times[0], "second_step_s": times[1]}))


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return child(args)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "MINIDL_NUM_THREADS"):
        env[name] = str(args.threads)
    runs = {"minidl": [], "torch": []}
    for _ in range(args.repeats):
        for framework in runs:
            command = [sys.executable, __file__, "--child", framework, "--model", args.model,
                       "--batch-size", str(args.batch_size), "--threads", str(args.threads)]
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            runs[framework].append(json.loads(out.stdout.strip().splitlines()[-1]))
    result = {"model": args.model, "batch_size": args.batch_size, "threads": args.threads, "repeats": args.repeats}
    for framework, measurements in runs.items():
        for key in ("import_s", "first_step_s", "second_step_s"):
            result[f"{framework}_{key}"] = statistics.median(m[key] for m in measurements)
        print(f"{framework:<7} {args.model} batch {args.batch_size}, {args.threads} thread(s): import "
              f"{result[framework + '_import_s']:.2f} s, first step {result[framework + '_first_step_s']:.2f} s, "
              f"second {result[framework + '_second_step_s']:.2f} s (medians of {args.repeats} processes)")
    result["first_step_ratio"] = result["torch_first_step_s"] / result["minidl_first_step_s"]
    print(f"first step: PyTorch / minidl = {result['first_step_ratio']:.2f}x; import + first step: minidl "
          f"{result['minidl_import_s'] + result['minidl_first_step_s']:.2f} s, PyTorch "
          f"{result['torch_import_s'] + result['torch_first_step_s']:.2f} s")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
