"""minidl against PyTorch on real data: the same ResNet-20, the same initial weights, the same batches.

Issue 11's recipe: Fashion-MNIST (``--train-size`` 12,000 class-balanced training images, the full 10,000-image
test set), ResNet-20 for 1-channel 28x28 images, SGD (momentum 0.9, Nesterov, weight decay 5e-4) with
``OneCycleLR(max_lr=0.1)`` stepped per batch, batch 128, 2 epochs, random crop (pad 2) + horizontal flip +
normalisation. For each seed, minidl's model is built and initialised; its PyTorch twin
(``tests/torch_resnets.py``, the one the parity tests prove equal) is loaded with the same weights; every batch
comes out of minidl's ``DataLoader`` once and is fed to both. So the two runs differ only in how each framework
rounds its float32 (or float64) arithmetic. Both train in lockstep in one process; each step's two losses are
kept, and the table gives each seed's test top-1 of both and the difference.

``--dtype float64`` checks the harness itself (the two trajectories then agree to ~1e-10). ``--trace FILE``
writes each step's losses (and, with ``--shadow64``, the distance of each float32 run's weights from a float64
run of its own framework, from the same start and batches) as JSON lines, to see where float32 training drifts.

    python benchmarks/fashion_mnist_parity.py --seeds 0 1 2 3                # the table of docs/training.md
    python benchmarks/fashion_mnist_parity.py --seeds 0 --train-size 2048 --epochs 1 --dtype float64
    python benchmarks/fashion_mnist_parity.py --seeds 0 --shadow64 --trace runs/parity0.jsonl
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="one run of each framework per seed")
    parser.add_argument("--train-size", type=int, default=12_000, help="class-balanced training images")
    parser.add_argument("--test-size", type=int, default=10_000, help="test images (the first N)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs")
    parser.add_argument("--batch-size", type=int, default=128, help="images per step")
    parser.add_argument("--max-lr", type=float, default=0.1, help="OneCycleLR's peak learning rate")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="both frameworks' dtype")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads of each framework")
    parser.add_argument("--no-augment", action="store_true", help="no crop and flip")
    parser.add_argument("--shadow64", action="store_true",
                        help="also train each framework in float64 from the same start and batches, and trace "
                             "how far each float32 run's weights drift from its float64 twin")
    parser.add_argument("--trace", default=None, help="JSON-lines file for per-step losses (and drifts)")
    parser.add_argument("--data-dir", default="data", help="Fashion-MNIST files (else Debian's dataset-fashion-mnist)")
    parser.add_argument("--reference", action="store_true", help="minidl's reference ops (MINIDL_REFERENCE=1)")
    parser.add_argument("--order-offset", type=int, default=0,
                        help="batch order (shuffle and augmentation) drawn from seed + this; the training subset "
                             "and the initial weights stay those of the seed")
    parser.add_argument("--results", default=None,
                        help="JSON-lines file: each finished seed is appended; seeds already there with the same "
                             "settings are not run again (a killed run resumes)")
    parser.add_argument("--frameworks", nargs="+", choices=["minidl", "torch"], default=["minidl", "torch"],
                        help="which to train (e.g. only minidl for a --reference run, PyTorch's being unchanged)")
    parser.add_argument("--drift-every", type=int, default=10, help="with --shadow64: steps between drift records")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="stop after this many steps (the schedule still spans all epochs): for --trace")
    return parser.parse_args()


# the settings that make two result rows comparable (a row is reused on resume only if all are equal)
SETTINGS = ("train_size", "test_size", "epochs", "batch_size", "max_lr", "dtype", "no_augment", "reference",
            "order_offset", "max_steps", "frameworks", "threads")


def set_threads(threads, reference):
    for variable in ("MINIDL_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, str(threads))
    if reference:
        os.environ["MINIDL_REFERENCE"] = "1"


class MinidlRun:
    def __init__(self, model, args, steps, dtype):
        import minidl
        from minidl import optim
        self.minidl, self.F = minidl, minidl.nn.functional
        self.model = model.to(dtype=getattr(minidl, dtype))
        self.dtype = dtype
        self.optimizer = optim.SGD(model.parameters(), lr=args.max_lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
        self.scheduler = optim.lr_scheduler.OneCycleLR(self.optimizer, max_lr=args.max_lr, total_steps=steps)

    def step(self, images, labels):
        self.model.train()
        x = self.minidl.tensor(images.astype(self.dtype))
        loss = self.F.cross_entropy(self.model(x), self.minidl.tensor(labels))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.item())

    def weights(self):
        return {k: v.astype("float64") for k, v in self.model.state_dict().items() if v.dtype.kind == "f"}

    def correct(self, images, labels):
        self.model.eval()
        with self.minidl.no_grad():
            logits = self.model(self.minidl.tensor(images.astype(self.dtype))).numpy()
        return int((logits.argmax(1) == labels).sum())


class TorchRun:
    def __init__(self, state, args, steps, dtype):
        import torch
        from torch_resnets import TorchCifarResNet, to_torch_state
        self.torch = torch
        self.model = TorchCifarResNet(3, num_classes=10, shortcut="projection", in_channels=1)
        self.model.load_state_dict(to_torch_state(state))
        self.model.to(getattr(torch, dtype))
        self.dtype = getattr(torch, dtype)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=args.max_lr, momentum=0.9, nesterov=True,
                                         weight_decay=5e-4)
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(self.optimizer, max_lr=args.max_lr, total_steps=steps)

    def step(self, images, labels):
        self.model.train()
        loss = self.torch.nn.functional.cross_entropy(self.model(self.torch.from_numpy(images).to(self.dtype)),
                                                      self.torch.from_numpy(labels))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.item())

    def weights(self):
        return {k: v.detach().double().numpy() for k, v in self.model.state_dict().items() if v.is_floating_point()}

    def correct(self, images, labels):
        self.model.eval()
        with self.torch.no_grad():
            logits = self.model(self.torch.from_numpy(images).to(self.dtype)).numpy()
        return int((logits.argmax(1) == labels).sum())


def drift(run32, run64):
    """Relative distance of a float32 run's weights from its float64 twin's: ||w32 - w64|| / ||w64||."""
    import numpy as np
    a, b = run32.weights(), run64.weights()
    num = sum(float(((a[k] - b[k]) ** 2).sum()) for k in b)
    den = sum(float((b[k] ** 2).sum()) for k in b)
    return (num / den) ** 0.5 if den else float("nan")


def one_seed(seed, args, trace):
    import numpy as np
    import torch

    import minidl
    from minidl.data import DataLoader, FashionMNIST, random_subset
    from minidl.data import transforms as T
    from minidl.models import resnet20

    normalize = T.Normalize((0.2860,), (0.3530,))
    augment = None if args.no_augment else T.Compose([T.RandomCrop(28, padding=2), T.RandomHorizontalFlip(), normalize])
    train = random_subset(FashionMNIST(args.data_dir, train=True), args.train_size, seed=seed)
    test = FashionMNIST(args.data_dir, train=False)
    loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, seed=seed + args.order_offset,
                        transform=augment or normalize)
    steps = args.epochs * len(loader)
    last_step = min(steps, args.max_steps or steps)
    minidl.manual_seed(seed)
    model = resnet20(num_classes=10, in_channels=1)
    start = {k: np.array(v, copy=True) for k, v in model.state_dict().items()}
    runs = {"minidl": lambda: MinidlRun(model, args, steps, args.dtype),
            "torch": lambda: TorchRun(start, args, steps, args.dtype)}
    runs = {name: make() for name, make in runs.items() if name in args.frameworks}
    shadows = {}
    if args.shadow64:
        twin = resnet20(num_classes=10, in_channels=1)
        twin.load_state_dict(start)
        shadows = {"minidl": lambda: MinidlRun(twin, args, steps, "float64"),
                   "torch": lambda: TorchRun(start, args, steps, "float64")}
        shadows = {name: make() for name, make in shadows.items() if name in args.frameworks}
    torch.set_num_threads(args.threads)
    started, step = time.perf_counter(), 0
    seconds = {name: 0.0 for name in runs}
    for epoch in range(args.epochs):
        loader.set_epoch(epoch)
        for images, labels in loader:
            if step == last_step:
                break
            images, labels = images.numpy(), labels.numpy()
            losses, took = {}, {}
            for name, run in runs.items():
                tick = time.perf_counter()
                losses[name] = run.step(images, labels)
                took[name] = round(time.perf_counter() - tick, 3)
                seconds[name] += took[name]
            losses64 = {name: run.step(images, labels) for name, run in shadows.items()}
            step += 1
            if trace is not None:
                record = {"seed": seed, "order_offset": args.order_offset, "step": step,
                          **{f"{k}_loss": v for k, v in losses.items()},
                          **{f"{k}_loss64": v for k, v in losses64.items()},
                          **{f"{k}_seconds": v for k, v in took.items()}}
                if shadows and (step % args.drift_every == 0 or step == last_step):
                    record.update({f"{name}_drift": drift(runs[name], shadows[name]) for name in runs})
                    if len(runs) == 2:  # minidl's run against PyTorch's, in float64 and in float32
                        record["drift_64"] = drift(shadows["minidl"], shadows["torch"])
                        record["drift_32"] = drift(runs["minidl"], runs["torch"])
                trace.write(json.dumps(record) + "\n")
                trace.flush()
    images = np.asarray(test.images[:args.test_size], dtype=np.float32) / 255
    images = np.asarray(normalize(images, np.random.default_rng(0)))
    labels = np.asarray(test.targets[:args.test_size])
    result = {"seed": seed, "seconds": round(time.perf_counter() - started, 1),
              "train_seconds": {name: round(value, 1) for name, value in seconds.items()}, "steps": step}
    for name, run in runs.items():
        correct = sum(run.correct(images[i:i + 1000], labels[i:i + 1000]) for i in range(0, len(labels), 1000))
        result[name] = 100 * correct / len(labels)
    result["last_losses"] = losses
    result["settings"] = {name: getattr(args, name) for name in SETTINGS}
    return result


def finished_rows(path, args):
    """Rows of ``path`` (JSON lines) run with the same settings as ``args``, by seed."""
    if not path or not os.path.exists(path):
        return {}
    wanted = {name: getattr(args, name) for name in SETTINGS}
    rows = {}
    with open(path) as lines:
        for line in lines:
            if line.strip():
                row = json.loads(line)
                if row.get("settings") == wanted:
                    rows[row["seed"]] = row
    return rows


def difference(row):
    return row["minidl"] - row["torch"] if "minidl" in row and "torch" in row else None


def percent(value):
    return "-" if value is None else f"{value:.2f}%"


def signed(value):
    return "-" if value is None else f"{value:+.2f}"


def main():
    args = parse_args()
    set_threads(args.threads, args.reference)
    import minidl
    import torch
    trace = open(args.trace, "a") if args.trace else None
    done = finished_rows(args.results, args)
    rows = []
    print(f"Fashion-MNIST, {args.train_size} training images, ResNet-20, SGD Nesterov + OneCycle(max_lr "
          f"{args.max_lr}), {args.epochs} epochs, batch {args.batch_size}, {args.dtype}, {args.threads} threads, "
          f"{'reference' if args.reference else 'fast CPU'} ops, batch orders seed + {args.order_offset}; "
          f"minidl {getattr(minidl, '__version__', '?')}, torch {torch.__version__}")
    print(f"{'seed':>4} {'minidl top-1':>13} {'torch top-1':>12} {'minidl - torch':>15} {'seconds':>8}")
    for seed in args.seeds:
        row = done.get(seed)
        if row is None:
            row = one_seed(seed, args, trace)
            if args.results:
                with open(args.results, "a") as results:
                    results.write(json.dumps(row) + "\n")
        rows.append(row)
        print(f"{seed:>4} {percent(row.get('minidl')):>13} {percent(row.get('torch')):>12} "
              f"{signed(difference(row)):>15} {row['seconds']:>8}", flush=True)
    columns = [[row[name] for row in rows if name in row] for name in ("minidl", "torch")]
    columns.append([difference(row) for row in rows if difference(row) is not None])
    means = [statistics.mean(values) if values else None for values in columns]
    spreads = [f"{statistics.stdev(values):.2f}" if len(values) > 1 else "-" for values in columns]
    print(f"mean {percent(means[0]):>13} {percent(means[1]):>12} {signed(means[2]):>15}   "
          f"(sample std {' / '.join(spreads)})")
    print(json.dumps({"args": vars(args), "rows": rows}))
    if trace:
        trace.close()


if __name__ == "__main__":
    main()
