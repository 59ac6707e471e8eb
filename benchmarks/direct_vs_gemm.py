"""A whole training step with the direct SIMD convolution kernels against the same step with the GEMM paths
that ran before them (issue 13's "no model slower than before"), in one process, alternating blocks.

    python benchmarks/direct_vs_gemm.py --model resnet18 --batch-size 32 --threads 1 --clock cpu

Both run the same model from the same weights on the same batch; only ``backends/cpu/conv.py``'s strategy
differs (``direct_conv_available``).  Prints the median step of each and their ratio; the last line is JSON.
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--steps", type=int, default=12, help="timed steps per variant")
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--eval", action="store_true", help="inference: eval mode, no gradients")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args(argv)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "MINIDL_NUM_THREADS"):
        os.environ[name] = str(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import numpy as np

    import minidl
    from minidl.backends.cpu import conv
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    minidl.manual_seed(0)
    model = minidl.models.get_model(args.model).train(not args.eval)
    optimizer = minidl.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = minidl.tensor(rng.standard_normal((args.batch_size, 3, 32, 32)).astype(np.float32))
    y = minidl.tensor(rng.integers(0, 10, args.batch_size))

    def step():
        if args.eval:
            with minidl.no_grad():
                model(x)
            return
        optimizer.zero_grad()
        minidl.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    times = {"direct": [], "gemm": []}
    for block in range(args.blocks):
        for variant in times:
            conv._direct_available = variant == "direct"
            step()  # untimed: the other variant just ran
            for _ in range(args.steps // args.blocks):
                start = clock()
                step()
                times[variant].append(clock() - start)
    medians = {variant: 1000 * statistics.median(t) for variant, t in times.items()}
    result = {"model": args.model, "batch_size": args.batch_size, "threads": args.threads, "clock": args.clock,
              "mode": "eval" if args.eval else "train", "direct_ms": medians["direct"], "gemm_ms": medians["gemm"],
              "speedup": medians["gemm"] / medians["direct"]}
    print(f"{args.model} batch {args.batch_size} {result['mode']}, {args.threads} thread(s), {args.clock} clock: "
          f"direct kernels {medians['direct']:.1f} ms, GEMM paths {medians['gemm']:.1f} ms per step: "
          f"{result['speedup']:.2f}x")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
