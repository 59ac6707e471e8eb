"""The degradation experiment: plain networks against ResNets of the same depth, with per-layer gradient norms.

He et al. (2016) observed that a deeper plain network (a stack of conv-BN-ReLU layers) reaches a *higher*
training error than a shallower one, and that identity shortcuts remove this "degradation". This script
trains both families at each depth of ``--depths`` on real Fashion-MNIST images (offline: Debian's
``dataset-fashion-mnist``, see ``minidl.data.FashionMNIST``) and measures what the gradient does on its way
back to the first layer.

Networks (depth 6n+2, the CIFAR layout of ``minidl.models.CifarResNet`` on 1x28x28 inputs; stages of
``--width``, 2x and 4x channels at 28, 14 and 7 pixels; BatchNorm after every convolution in both):

- ``resnet``: ``BasicBlock`` with He et al.'s option A shortcuts (``ZeroPadShortcut``), so no parameters
  beyond the plain net's; at width 16 this is ``minidl.models.resnet20(in_channels=1, shortcut="zero_pad")``
  (and resnet56) layer for layer;
- ``plain``: the same network with every shortcut removed: a block is
  ``relu(bn2(conv2(relu(bn1(conv1(x))))))``. Both have exactly the same parameters, initialised alike
  (Kaiming normal, fan_in) from the same seed.

Recipe, the same for every network: SGD lr ``--lr`` (0.1), momentum 0.9, weight decay 1e-4, batch 128,
cosine annealing per step to 0 (``--warmup-steps K``: the first K steps at ``--warmup-lr`` 0.01, as He et al.
warmed up ResNet-110, then the cosine over the rest), no augmentation (the question is how well the optimiser fits the training
set); ``--subset`` class-mixed training images (a seeded permutation of the 60,000), evaluated after every
epoch on ``--test-size`` test images (eval mode). Every network sees the same batches in the same order.

Gradient norms: on the training batch of steps 0 (initialisation), every ``--probe-every`` steps, and the
last step, forward hooks on every convolution of the main path keep its output and ``retain_grad()`` it;
after ``backward()`` the script records, per layer (the stem conv is layer 1), the norm of the gradient of
the loss with respect to the convolution's output, ``||dL/dh_l||``, and with respect to its weight,
``||dL/dW_l||``, and the norm of the weight itself, ``||W_l||``.

Outputs in ``--out``: ``results.json`` (every number: per-step losses, per-epoch test accuracy, all
probes), ``curves.png`` (training loss and test accuracy per depth and family) and ``grad_norms.png``
(per-layer gradient norms at initialisation and at the end of training).

    python examples/gradient_flow.py                      # the run of docs/degradation.md (about 40 min, 2 cores)
    python examples/gradient_flow.py --depths 8,14 --subset 512 --epochs 1 --width 8   # a one-minute run
"""
import argparse
import json
import math
import os
import time

import numpy as np

import minidl
import minidl.nn as nn
import minidl.nn.functional as F
from minidl import optim
from minidl.data import FashionMNIST
from minidl.models.resnet import BasicBlock
from minidl.models.resnet_cifar import ZeroPadShortcut, kaiming_init

MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST's pixel mean and standard deviation (on [0, 1])
FAMILIES = ("plain", "resnet")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--depths", default="20,56", help="comma-separated depths 6n+2 (8, 14, 20, 32, 44, 56, ...)")
    parser.add_argument("--width", type=int, default=16, help="channels of the first stage (then 2x and 4x)")
    parser.add_argument("--subset", type=int, default=10000, help="training images used (of 60,000)")
    parser.add_argument("--test-size", type=int, default=2000, help="test images evaluated after each epoch")
    parser.add_argument("--epochs", type=int, default=4, help="passes over the training subset")
    parser.add_argument("--batch-size", type=int, default=128, help="images per SGD step")
    parser.add_argument("--lr", type=float, default=0.1, help="initial learning rate (cosine to 0)")
    parser.add_argument("--warmup-steps", type=int, default=0,
                        help="train the first steps at --warmup-lr (He et al.'s ResNet-110 warm-up), then cosine")
    parser.add_argument("--warmup-lr", type=float, default=0.01, help="learning rate during the warm-up steps")
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    parser.add_argument("--weight-decay", type=float, default=1e-4, help="SGD weight decay")
    parser.add_argument("--probe-every", type=int, default=25, help="record gradient norms every this many steps")
    parser.add_argument("--data-dir", default="data", help="folder for the data set (falls back to Debian's copy)")
    parser.add_argument("--out", default=os.path.join("runs", "gradient_flow"), help="folder for results and plots")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialisation and the data order")
    args = parser.parse_args(argv)
    try:
        args.depths = [int(d) for d in args.depths.split(",") if d.strip()]
    except ValueError:
        parser.error(f"--depths must be comma-separated integers, got {args.depths!r}")
    bad = [d for d in args.depths if d < 8 or (d - 2) % 6]
    if bad:
        parser.error(f"--depths must be of the form 6n+2 with n >= 1 (8, 14, 20, 26, 32, 44, 56, ...), got {bad}")
    return args


# --------------------------------------------------------------------------- the two families
class PlainBlock(nn.Module):
    """A BasicBlock without its shortcut: ``relu(bn2(conv2(relu(bn1(conv1(x))))))``."""

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)

    def forward(self, x):
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))


class CifarNet(nn.Module):
    """He et al.'s CIFAR layout for 1x28x28 images, with or without shortcuts.

    ``residual=True`` with ``width=16`` is ``minidl.models.resnet20/56(in_channels=1, shortcut="zero_pad")``
    layer for layer (``BasicBlock`` with ``ZeroPadShortcut``); ``residual=False`` uses ``PlainBlock``. Both are
    initialised as ``CifarResNet`` is: Kaiming normal (fan_in) for every conv and linear weight, BN weight 1.
    """

    def __init__(self, blocks_per_stage, width=16, residual=True, num_classes=10, in_channels=1):
        super().__init__()
        self.residual, self.inplanes = residual, width
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.layer1 = self._make_layer(width, blocks_per_stage, stride=1)
        self.layer2 = self._make_layer(2 * width, blocks_per_stage, stride=2)
        self.layer3 = self._make_layer(4 * width, blocks_per_stage, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(4 * width, num_classes)
        kaiming_init(self)

    def _block(self, inplanes, planes, stride):
        if not self.residual:
            return PlainBlock(inplanes, planes, stride)
        shortcut = ZeroPadShortcut(inplanes, planes, stride) if stride != 1 or inplanes != planes else None
        return BasicBlock(inplanes, planes, stride, shortcut)

    def _make_layer(self, planes, blocks, stride):
        layers = [self._block(self.inplanes, planes, stride)]
        self.inplanes = planes
        layers += [self._block(planes, planes, 1) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


def build(family, depth, width, seed):
    """The ``family`` network of ``depth`` layers (6n+2), initialised from ``seed``."""
    minidl.manual_seed(seed)
    return CifarNet((depth - 2) // 6, width=width, residual=family == "resnet")


def main_path_convs(model):
    """(name, Conv2d) of every convolution on the main path, input to output (the stem is first)."""
    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, nn.Conv2d) and "downsample" not in name]


# --------------------------------------------------------------------------- data
def load_data(args):
    """Normalised float32 arrays: (train images, train labels, test images, test labels)."""
    rng = np.random.default_rng(args.seed)
    train, test = FashionMNIST(args.data_dir, train=True), FashionMNIST(args.data_dir, train=False)
    train_idx = rng.permutation(len(train))[:args.subset]
    test_idx = rng.permutation(len(test))[:args.test_size]

    def prepare(images):
        return ((images.astype(np.float32) / 255 - MEAN) / STD).astype(np.float32)

    return (prepare(train.images[train_idx]), train.targets[train_idx],
            prepare(test.images[test_idx]), test.targets[test_idx])


def epoch_batches(num_images, batch_size, rng):
    """Index arrays of one shuffled epoch (the last partial batch dropped, so BN sees full batches)."""
    order = rng.permutation(num_images)
    return [order[i:i + batch_size] for i in range(0, num_images - batch_size + 1, batch_size)]


# --------------------------------------------------------------------------- gradient probe
class GradientProbe:
    """Forward hooks that keep every main-path convolution's output (with ``retain_grad``), so that after
    ``backward()`` ``norms()`` can read ||dL/dh_l|| and ||dL/dW_l|| per layer."""

    def __init__(self, model):
        self.convs = main_path_convs(model)
        self.outputs = {}
        self.handles = [conv.register_forward_hook(self._keep(name)) for name, conv in self.convs]

    def _keep(self, name):
        def hook(module, inputs, output):
            output.retain_grad()
            self.outputs[name] = output
        return hook

    def norms(self):
        activation = [float(np.linalg.norm(self.outputs[name].grad.detach().numpy())) for name, _ in self.convs]
        weight = [float(np.linalg.norm(conv.weight.grad.detach().numpy())) for _, conv in self.convs]
        size = [float(np.linalg.norm(conv.weight.detach().numpy())) for _, conv in self.convs]
        return {"activation_grad": activation, "weight_grad": weight, "weight_norm": size}

    def remove(self):
        for handle in self.handles:
            handle.remove()
        self.outputs.clear()


# --------------------------------------------------------------------------- training
def evaluate(model, images, labels, batch_size=500):
    model.eval()
    correct = 0
    with minidl.no_grad():
        for start in range(0, len(images), batch_size):
            logits = model(minidl.tensor(images[start:start + batch_size])).numpy()
            correct += int((logits.argmax(axis=1) == labels[start:start + batch_size]).sum())
    model.train()
    return correct / len(images)


def learning_rate(step, total_steps, args):
    """--warmup-lr for the first --warmup-steps steps, then cosine annealing from --lr to 0."""
    if step < args.warmup_steps:
        return args.warmup_lr
    progress = (step - args.warmup_steps) / max(1, total_steps - args.warmup_steps)
    return 0.5 * args.lr * (1 + math.cos(math.pi * progress))


def train_one(family, depth, data, args):
    """Trains one network; returns its record (losses, accuracies, probes, parameter count, time)."""
    train_x, train_y, test_x, test_y = data
    model = build(family, depth, args.width, args.seed)
    optimizer = optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    rng = np.random.default_rng(args.seed + 1)  # the same batches, in the same order, for every network
    schedule = [epoch_batches(len(train_x), args.batch_size, rng) for _ in range(args.epochs)]
    total_steps = sum(len(batches) for batches in schedule)
    if total_steps == 0:
        raise SystemExit(f"--subset {args.subset} is smaller than one batch of {args.batch_size}")
    record = {"family": family, "depth": depth, "parameters": model.num_parameters(), "steps": total_steps,
              "loss": [], "train_acc": [], "test_acc": [], "test_acc_steps": [], "probes": []}
    start, step = time.perf_counter(), 0
    for epoch, batches in enumerate(schedule):
        for indices in batches:
            lr = learning_rate(step, total_steps, args)
            for group in optimizer.param_groups:
                group["lr"] = lr
            probing = step == 0 or step == total_steps - 1 or step % args.probe_every == 0
            probe = GradientProbe(model) if probing else None
            logits = model(minidl.tensor(train_x[indices]))
            loss = F.cross_entropy(logits, minidl.tensor(train_y[indices]))
            optimizer.zero_grad()
            loss.backward()
            if probe is not None:
                record["probes"].append({"step": step, **probe.norms()})
                probe.remove()
            optimizer.step()
            loss_value = float(loss.item())
            if not math.isfinite(loss_value):
                raise SystemExit(f"{family}-{depth}: the loss became {loss_value} at step {step}")
            record["loss"].append(loss_value)
            record["train_acc"].append(float((logits.detach().numpy().argmax(axis=1) == train_y[indices]).mean()))
            step += 1
        record["test_acc"].append(evaluate(model, test_x, test_y))
        record["test_acc_steps"].append(step)
        print(f"{family}-{depth} epoch {epoch + 1}/{args.epochs}: train loss (epoch mean) "
              f"{np.mean(record['loss'][-len(batches):]):.4f}, test accuracy {record['test_acc'][-1]:.4f}, "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    record["seconds"] = time.perf_counter() - start
    record["layers"] = [name for name, _ in main_path_convs(model)]
    return record


# --------------------------------------------------------------------------- plots
COLORS = {"plain": "tab:red", "resnet": "tab:blue"}
STYLES = {0: ":", 1: "-", 2: "--", 3: "-."}


def smooth(values, window):
    window = max(1, min(window, len(values)))
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid"), window


def plot_curves(records, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (loss_axis, acc_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    depths = sorted({r["depth"] for r in records})
    for record in records:
        style = STYLES[depths.index(record["depth"]) % len(STYLES)] if len(depths) > 1 else "-"
        label = f"{record['family']}-{record['depth']}"
        values, window = smooth(record["loss"], max(1, record["steps"] // 20))
        steps = np.arange(window - 1, window - 1 + len(values))
        loss_axis.plot(steps, values, style, color=COLORS[record["family"]], label=label)
        acc_axis.plot(record["test_acc_steps"], record["test_acc"], style, marker="o", markersize=3,
                      color=COLORS[record["family"]], label=label)
    loss_axis.set(xlabel="step", ylabel=f"training loss (moving mean)", yscale="log", title="(a) training loss")
    acc_axis.set(xlabel="step", ylabel="test accuracy", title="(a) test accuracy after each epoch")
    for axis in (loss_axis, acc_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_grad_norms(records, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = {"activation_grad": "||dL/dh|| (conv output)", "weight_grad": "||dL/dW|| (conv weight)",
              "weight_norm": "||W|| (conv weight)"}
    keys = [key for key in titles if key in records[0]["probes"][0]]  # results of older runs lack weight_norm
    depths = sorted({r["depth"] for r in records})
    figure, axes = plt.subplots(len(depths), len(keys), figsize=(5 * len(keys), 3.6 * len(depths)), squeeze=False)
    for row, depth in enumerate(depths):
        for record in (r for r in records if r["depth"] == depth):
            first, last = record["probes"][0], record["probes"][-1]
            layers = np.arange(1, len(first["weight_grad"]) + 1)
            for col, key in enumerate(keys):
                axis = axes[row, col]
                axis.plot(layers, first[key], ":", marker=".", color=COLORS[record["family"]],
                          label=f"{record['family']}-{depth}, initialisation")
                axis.plot(layers, last[key], "-", marker=".", color=COLORS[record["family"]],
                          label=f"{record['family']}-{depth}, step {last['step']}")
        for col, key in enumerate(keys):
            axes[row, col].set(yscale="log", xlabel="layer (1 = stem convolution)", ylabel=titles[key],
                               title=f"(b) depth {depth}: {titles[key]}")
            axes[row, col].grid(alpha=0.3)
            axes[row, col].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


# --------------------------------------------------------------------------- summary
def rounded(value, digits=6):
    """``value`` with every float rounded to ``digits`` significant digits (a smaller results.json)."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {key: rounded(item, digits) for key, item in value.items()}
    if isinstance(value, list):
        return [rounded(item, digits) for item in value]
    return value


def summary(record):
    """The numbers quoted in the docs: final losses and accuracies, first/last layer gradient ratios."""
    last_epoch = record["loss"][-(record["steps"] // len(record["test_acc"])):]
    first, last = record["probes"][0], record["probes"][-1]
    return {
        "final_train_loss": float(np.mean(last_epoch)),
        "final_train_acc": float(np.mean(record["train_acc"][-len(last_epoch):])),
        "final_test_acc": record["test_acc"][-1],
        "init_activation_grad_first_over_last": first["activation_grad"][0] / first["activation_grad"][-1],
        "init_weight_grad_first_over_last": first["weight_grad"][0] / first["weight_grad"][-1],
        "end_weight_grad_first_over_last": last["weight_grad"][0] / last["weight_grad"][-1],
        "seconds": record["seconds"],
    }


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    data = load_data(args)
    print(f"Fashion-MNIST: {len(data[0])} training and {len(data[2])} test images; depths {args.depths}, "
          f"width {args.width}, {args.epochs} epochs of batch {args.batch_size}", flush=True)
    records = []
    for depth in args.depths:
        for family in FAMILIES:
            records.append(train_one(family, depth, data, args))
            records[-1]["summary"] = summary(records[-1])
    results = {"command_args": {k: v for k, v in vars(args).items()}, "records": records}
    temporary = os.path.join(args.out, "results.json.tmp")
    with open(temporary, "w") as file:
        json.dump(rounded(results), file, separators=(",", ":"))
    os.replace(temporary, os.path.join(args.out, "results.json"))
    plot_curves(records, os.path.join(args.out, "curves.png"))
    plot_grad_norms(records, os.path.join(args.out, "grad_norms.png"))
    print(f"{'network':<12}{'params':>10}{'train loss':>12}{'train acc':>11}{'test acc':>10}"
          f"{'init |dW1|/|dWL|':>18}{'end |dW1|/|dWL|':>17}{'time':>8}")
    for record in records:
        s = record["summary"]
        print(f"{record['family'] + '-' + str(record['depth']):<12}{record['parameters']:>10,}"
              f"{s['final_train_loss']:>12.4f}{s['final_train_acc']:>11.4f}{s['final_test_acc']:>10.4f}"
              f"{s['init_weight_grad_first_over_last']:>18.3g}{s['end_weight_grad_first_over_last']:>17.3g}"
              f"{s['seconds']:>7.0f}s")
    print(f"results.json, curves.png, grad_norms.png -> {args.out}")


if __name__ == "__main__":
    main()
