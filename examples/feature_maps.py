"""E15: feature maps of one image at an early convolution and a deep block, saved as image grids.

The report plotted ResNet-18's activations for one test image (a ship, a cat): the first convolutions still
show the object's outline and surroundings; a deep layer's maps are coarse and hard to read. This script
does the same with forward hooks (``Module.register_forward_hook``): it runs one image through the model,
keeps the output of each module named in ``--layers`` (``named_modules`` names: ``conv1`` is the first
convolution, ``layer1.0.conv1`` the first block's, ``layer4`` the last stage), and saves one PNG grid per
layer (the first ``--maps`` channels) plus the input image to ``--out``.

With ``--checkpoint`` (a run's ``last.npz``, or ``best.npz`` when it validated) the network is the one the
checkpoint records (its name and constructor arguments, ``minidl.models.from_checkpoint``) with its weights:
nothing else needs saying. ``--model`` (any ``minidl.models.get_model`` name; ``--stem`` for ResNet-18/34/50)
builds a randomly initialised network instead (the maps of an untrained network show only its filters' random
responses), or names the network of a checkpoint too old to record it; if it disagrees with what a
checkpoint records, the script says both. The image is test image ``--index`` of ``--dataset`` (or a fake
image with ``--fake-data``), scaled to [0, 1], normalised with the data set's mean/std (``--normalize``),
resized with ``--image-size``.

    python examples/train_resnet18_cifar10.py --epochs 30
    python examples/feature_maps.py --checkpoint runs/train_resnet18_cifar10/last.npz --index 1
    python examples/feature_maps.py --model resnet18 --stem imagenet --image-size 224 --layers conv1,layer1,layer4
    python examples/feature_maps.py --fake-data
"""
import argparse
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import minidl  # noqa: E402
from minidl.autograd import no_grad  # noqa: E402
from minidl.data import CIFAR10, CIFAR100, ChecksumError, DatasetNotFoundError, FakeData, FashionMNIST  # noqa: E402
from minidl.data import transforms as T  # noqa: E402
from minidl.models import ArchitectureMismatch, describe, from_checkpoint, get_model, list_models  # noqa: E402
from minidl.train.checkpoint import CheckpointError  # noqa: E402
from minidl.train.experiment import (CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD,  # noqa: E402
                                     IMAGENET_MEAN, IMAGENET_STD, check_device, missing_data_message)

# name -> (dataset class, classes, image shape, mean, std)
DATASETS = {
    "cifar10": (CIFAR10, 10, (3, 32, 32), CIFAR10_MEAN, CIFAR10_STD),
    "cifar100": (CIFAR100, 100, (3, 32, 32), CIFAR100_MEAN, CIFAR100_STD),
    "fashion-mnist": (FashionMNIST, 10, (1, 28, 28), (0.2860,), (0.3530,)),
}
STEM_MODELS = ("resnet18", "resnet34", "resnet50")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", default=None,
                        help="trainer checkpoint (.npz): the network it records, with its weights")
    parser.add_argument("--model", default=None, choices=list_models(),
                        help="network (default: the checkpoint's; without a checkpoint: resnet18, untrained)")
    parser.add_argument("--stem", choices=["cifar", "imagenet"], default="cifar", help="stem of resnet18/34/50")
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="cifar10", help="where the image comes from")
    parser.add_argument("--index", type=int, default=0, help="which test image")
    parser.add_argument("--layers", default="conv1,layer4",
                        help="comma-separated module names whose outputs to plot (an early conv, a deep block)")
    parser.add_argument("--maps", type=int, default=16, help="channels shown per layer")
    parser.add_argument("--normalize", choices=["dataset", "imagenet", "none"], default="dataset",
                        help="input normalisation the model was trained with")
    parser.add_argument("--image-size", type=int, default=None, help="resize the image to this side first")
    parser.add_argument("--data-dir", default="data", help="folder that holds (or receives) the data set")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--out", default=os.path.join("runs", "feature_maps"), help="folder for the PNGs")
    parser.add_argument("--seed", type=int, default=0, help="seed for the random initialisation")
    parser.add_argument("--fake-data", action="store_true", help="a fake image of the data set's shape")
    return parser.parse_args()


def load_image(args):
    """One test image as a float (1, C, H, W) array, prepared as the model's inputs were; and its label."""
    dataset_class, num_classes, shape, mean, std = DATASETS[args.dataset]
    try:
        dataset = (FakeData(max(args.index + 1, 8), shape, num_classes, seed=args.seed, train=False)
                   if args.fake_data else dataset_class(args.data_dir, train=False))
    except DatasetNotFoundError as error:
        raise SystemExit(missing_data_message(error, args.dataset, args.data_dir))
    except ChecksumError as error:
        raise SystemExit(f"{error}\n(--data-dir is {args.data_dir!r}; --fake-data runs without data.)")
    if not 0 <= args.index < len(dataset):
        raise SystemExit(f"--index {args.index} is outside the test set (0 to {len(dataset) - 1})")
    image, label = dataset[args.index]
    batch = np.asarray(image, dtype=np.float32)[None] / 255
    steps = [T.Resize((args.image_size, args.image_size))] if args.image_size else []
    if args.normalize != "none":
        steps.append(T.Normalize(*((IMAGENET_MEAN, IMAGENET_STD) if args.normalize == "imagenet" else (mean, std))))
    shown = T.Compose(steps[:1])(batch) if args.image_size else batch
    return T.Compose(steps)(batch) if steps else batch, shown, label


def build_model(args):
    """The checkpoint's network with its weights, or ``--model`` freshly initialised."""
    _, num_classes, shape, _, _ = DATASETS[args.dataset]
    kwargs = {"num_classes": num_classes}
    name = args.model or (None if args.checkpoint else "resnet18")
    if name in STEM_MODELS:
        kwargs["stem"] = args.stem
    if shape[0] != 3:
        kwargs["in_channels"] = shape[0]
    minidl.manual_seed(args.seed)
    if not args.checkpoint:
        print("no --checkpoint: the network is randomly initialised")
        return get_model(name, **kwargs).to(args.device).eval()
    try:
        model = from_checkpoint(args.checkpoint, name, **(kwargs if name else {}))
    except FileNotFoundError:
        raise SystemExit(f"--checkpoint {args.checkpoint}: no such file")
    except (ArchitectureMismatch, CheckpointError, ValueError) as error:
        raise SystemExit(f"--checkpoint: {error}")
    print(f"weights from {args.checkpoint} ({describe(minidl.models.architecture_of(model))})")
    return model.to(args.device).eval()


def capture(model, names, images):
    """Runs ``images`` through ``model``; returns {name: output array} of the named modules."""
    modules = dict(model.named_modules())
    unknown = [name for name in names if name not in modules]
    if unknown:
        raise SystemExit(f"unknown layer(s) {unknown}; some of the model's modules: "
                         f"{', '.join(name for name in modules if name and name.count('.') <= 1)}")
    outputs, handles = {}, []
    for name in names:
        def keep(module, inputs, output, name=name):
            outputs[name] = output.detach().cpu().numpy()
        handles.append(modules[name].register_forward_hook(keep))
    with no_grad():
        logits = model(minidl.tensor(images, device=images_device(model)))
    for handle in handles:
        handle.remove()
    return outputs, logits.detach().cpu().numpy()


def images_device(model):
    return next(iter(model.parameters())).device


def save_grid(maps, title, path, count):
    """The first ``count`` channels of ``maps`` (1, C, H, W) as a grid of grey images."""
    channels = maps[0][:count]
    cols = math.ceil(math.sqrt(len(channels)))
    rows = math.ceil(len(channels) / cols)
    figure, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows + 0.4), squeeze=False)
    for i, axis in enumerate(axes.flat):
        axis.axis("off")
        if i < len(channels):
            axis.imshow(channels[i], cmap="viridis")
            axis.set_title(str(i), fontsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def save_input(image, label, path):
    figure = plt.figure(figsize=(2.5, 2.8))
    picture = np.clip(image[0].transpose(1, 2, 0), 0, 1)
    plt.imshow(picture[..., 0] if picture.shape[-1] == 1 else picture, cmap="gray" if picture.shape[-1] == 1 else None)
    plt.axis("off")
    plt.title(f"input (label {label})")
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main():
    args = parse_args()
    check_device(args.device)
    names = [name.strip() for name in args.layers.split(",") if name.strip()]
    images, shown, label = load_image(args)
    model = build_model(args)
    outputs, logits = capture(model, names, images)
    os.makedirs(args.out, exist_ok=True)
    save_input(shown, label, os.path.join(args.out, "input.png"))
    for name in names:
        path = os.path.join(args.out, f"feature_maps_{name.replace('.', '_')}.png")
        maps = outputs[name]
        if maps.ndim != 4:
            print(f"{name}: output shape {maps.shape} is not a stack of maps; skipped")
            continue
        save_grid(maps, f"{type(model).__name__} {name}: {maps.shape[1]} maps of {maps.shape[2]}x{maps.shape[3]}", path,
                  args.maps)
        print(f"{name}: {maps.shape[1]} maps of {maps.shape[2]}x{maps.shape[3]} -> {path}")
    print(f"predicted class {int(logits.argmax())}, label {label}")


if __name__ == "__main__":
    main()
