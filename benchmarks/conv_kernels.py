"""GFLOP/s of each CPU convolution kernel, minidl's direct SIMD kernels against its GEMM path and PyTorch.

    python benchmarks/conv_kernels.py --threads 1 --model resnet20 --batch-size 128
    python benchmarks/conv_kernels.py --threads 2 --layers 16:16:32:3:1 --width 8 16

For each layer (C -> OC channels, HxW input, KxK kernel, stride) and each pass (forward, input
gradient, weight gradient) the implementations run in alternating rounds (direct, GEMM, PyTorch,
direct, ...), so a change of load on a shared machine falls on all of them alike; the median time of
the rounds is reported as GFLOP/s (with one thread, by default, of the process's CPU time, steadier
than the elapsed time when other processes share the cores) (2 * N * OH * OW * OC * C * K * K flops per pass).  The last line is
one JSON object.
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

MODELS = {  # name: [(C, OC, H, K, stride), ...], the distinct convolutions of the model (CIFAR input)
    "resnet20": [(3, 16, 32, 3, 1), (16, 16, 32, 3, 1), (16, 32, 32, 3, 2), (16, 32, 32, 1, 2), (32, 32, 16, 3, 1),
                 (32, 64, 16, 3, 2), (32, 64, 16, 1, 2), (64, 64, 8, 3, 1)],
    "resnet18": [(3, 64, 32, 3, 1), (64, 64, 32, 3, 1), (64, 128, 32, 3, 2), (64, 128, 32, 1, 2),
                 (128, 128, 16, 3, 1), (128, 256, 16, 3, 2), (256, 256, 8, 3, 1), (256, 512, 8, 3, 2),
                 (512, 512, 4, 3, 1)],
    "vgg16": [(3, 64, 32, 3, 1), (64, 64, 32, 3, 1), (64, 128, 16, 3, 1), (128, 128, 16, 3, 1),
              (128, 256, 8, 3, 1), (256, 256, 8, 3, 1), (256, 512, 4, 3, 1), (512, 512, 4, 3, 1),
              (512, 512, 2, 3, 1)],
}
PASSES = ("forward", "input_grad", "weight_grad")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet20", choices=sorted(MODELS))
    parser.add_argument("--layers", nargs="*", help="C:OC:H:K:stride instead of the model's layers")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--width", type=int, nargs="*", help="vector widths of the direct kernels (default: host)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--passes", nargs="*", choices=PASSES, default=list(PASSES), help="the passes to time")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--no-gemm", action="store_true")
    parser.add_argument("--clock", choices=("wall", "cpu"),
                        help="wall: elapsed time; cpu: this process's CPU time, which on a busy machine leaves out "
                             "the time other processes held the core (default: cpu with one thread, else wall)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "MINIDL_NUM_THREADS"):
        os.environ[name] = str(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import numpy as np

    import minidl  # noqa: F401  (sets up the CPU backend)
    from minidl.backends.cpu import direct_conv, simd
    gemm = _gemm_module()
    torch = None
    if not args.no_torch:
        import torch
        torch.set_num_threads(args.threads)
    clock = time.process_time if (args.clock or ("cpu" if args.threads == 1 else "wall")) == "cpu" \
        else time.perf_counter
    widths = args.width or [simd.HOST_WIDTH]
    layers = [tuple(int(v) for v in spec.split(":")) for spec in args.layers] if args.layers else MODELS[args.model]
    rng = np.random.default_rng(0)
    results = []
    print(f"{'layer':<22}{'pass':<12}" + "".join(f"{'direct' + str(w):>10}" for w in widths)
          + ("" if args.no_gemm else f"{'gemm':>10}") + ("" if torch is None else f"{'torch':>10}") + "   GFLOP/s")
    for c, oc, h, k, s in layers:
        n, pad = args.batch_size, k // 2
        x = rng.standard_normal((n, h, h, c), dtype=np.float32).transpose(0, 3, 1, 2)  # channels-last
        weight = (rng.standard_normal((oc, c, k, k), dtype=np.float32) * 0.1)
        geometry = (s, s), (pad, pad, pad, pad), (1, 1)
        oh = (h + 2 * pad - k) // s + 1
        g = rng.standard_normal((n, oh, oh, oc), dtype=np.float32).transpose(0, 3, 1, 2)
        flops = 2 * n * oh * oh * oc * c * k * k
        candidates = {}
        for w in widths:
            candidates[f"direct{w}"] = {
                "forward": lambda w=w: direct_conv.conv_forward(x, weight, None, *geometry, width=w),
                "input_grad": lambda w=w: direct_conv.conv_input_grad(g, weight, x.shape, *geometry, width=w),
                "weight_grad": lambda w=w: direct_conv.conv_weight_grad(x, g, weight.shape, *geometry, width=w)}
        if not args.no_gemm:
            candidates["gemm"] = {
                "forward": lambda: gemm.conv_forward(x, weight, None, *geometry),
                "input_grad": lambda: gemm.conv_input_grad(g, weight, x.shape, *geometry),
                "weight_grad": lambda: gemm.conv_weight_grad(x, None, g, weight.shape, *geometry)}
        if torch is not None:
            xt, wt, gt = (torch.from_numpy(np.ascontiguousarray(a)) for a in (x, weight, g))
            xt = xt.contiguous(memory_format=torch.channels_last)
            gt = gt.contiguous(memory_format=torch.channels_last)
            candidates["torch"] = _torch_passes(torch, xt, wt, gt, s, pad)
        for pass_name in args.passes:
            if c == 3 and pass_name == "input_grad":
                continue  # a network's input needs no gradient
            times = {name: [] for name in candidates}
            for name, passes in candidates.items():
                passes[pass_name]()  # warm-up (and numba compilation)
            for _ in range(args.rounds):
                for name, passes in candidates.items():
                    start = clock()
                    passes[pass_name]()
                    times[name].append(clock() - start)
            gflops = {name: flops / statistics.median(t) / 1e9 for name, t in times.items()}
            label = f"{c}->{oc} {h}x{h} k{k} s{s}"
            print(f"{label:<22}{pass_name:<12}" + "".join(f"{gflops[name]:>10.1f}" for name in candidates), flush=True)
            results.append({"layer": label, "pass": pass_name, "gflops": gflops,
                            "ms": {name: 1000 * statistics.median(t) for name, t in times.items()}})
    print(json.dumps({"batch_size": args.batch_size, "threads": args.threads, "results": results}))


def _gemm_module():
    """backends/cpu/conv.py with its strategy limited to the GEMMs (what ran before the direct kernels)."""
    from minidl.backends.cpu import conv
    choose = conv.strategy
    conv.strategy = lambda *args, **kwargs: choose(*args, **dict(kwargs, direct=False))
    return conv


def _torch_passes(torch, x, w, g, stride, pad):
    conv = torch.ops.aten.convolution_backward

    def backward(mask):
        return conv(g, x, w, None, [stride, stride], [pad, pad], [1, 1], False, [0, 0], 1, mask)

    with torch.no_grad():
        return {"forward": lambda: torch.nn.functional.conv2d(x, w, None, stride, pad),
                "input_grad": lambda: backward([True, False, False]),
                "weight_grad": lambda: backward([False, True, False])}


if __name__ == "__main__":
    main()
