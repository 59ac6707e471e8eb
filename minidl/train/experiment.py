"""What every example script shares: its command line, its data, and the run itself.

An example script states its recipe (model, optimizer, schedule, augmentation) and
hands the rest to these helpers::

    args = experiment_parser("ResNet-20 on CIFAR-10", epochs=182, batch_size=128, lr=0.1,
                             momentum=(0.9, "SGD momentum")).parse_args()
    data = load_data(args, "cifar10", train_transform=T.Compose([...]), val_fraction=0.1)
    model = minidl.models.resnet20(num_classes=data.num_classes)
    ...
    run_experiment(args, model, optimizer, data, scheduler)

``run_experiment`` turns what can go wrong into one line each (no traceback): training diverged,
Ctrl-C (with the command that resumes the run), ``--resume`` without a checkpoint, an ``--out``
that already holds a run, a checkpoint that does not fit. It saves the test top-1/top-5 into the
run's history and curves.
"""
import argparse
import os
import shlex
import sys
from dataclasses import dataclass

import numpy as np

from .. import random as minidl_random
from ..backend import device as Device, require_cupy
from ..data import CIFAR10, CIFAR100, ChecksumError, DataLoader, DatasetNotFoundError, FakeData, FashionMNIST, MNIST, random_subset, train_val_split
from ..data import transforms as T
from ..data import DistributedSampler
from ..experiments.recipes import weight_decay_groups  # noqa: F401  (re-exported: examples used it from here)
from ..nn import SyncBatchNorm
from ..nn.parallel import DistributedDataParallel
from . import processes
from .checkpoint import CheckpointError
from .trainer import Trainer, TrainingDiverged, TrainingInterrupted

DATASETS = {
    "cifar10": (lambda root, train, **kw: CIFAR10(root, train=train), 10, (3, 32, 32)),
    "cifar100": (lambda root, train, label_type="fine": CIFAR100(root, train=train, label_type=label_type), 100,
                 (3, 32, 32)),
    "fashion-mnist": (lambda root, train, **kw: FashionMNIST(root, train=train), 10, (1, 28, 28)),
    "mnist": (lambda root, train, **kw: MNIST(root, train=train), 10, (1, 28, 28)),
}

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
# The statistics torchvision's ImageNet-pretrained weights expect (E8, E12-E14).
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)
# Each data set's per-channel statistics, as the training scripts normalise with them.
DATASET_STATS = {"cifar10": (CIFAR10_MEAN, CIFAR10_STD), "cifar100": (CIFAR100_MEAN, CIFAR100_STD),
                 "fashion-mnist": (FASHION_MNIST_MEAN, FASHION_MNIST_STD), "mnist": ((0.1307,), (0.3081,))}


def evaluation_transform(dataset, normalize="dataset", image_size=None):
    """The test-time transform of a script that trained on ``dataset``: an optional resize, then the
    data set's mean/std (``normalize="dataset"``), ImageNet's (``"imagenet"``), or none (``"none"``)."""
    steps = [T.Resize((image_size, image_size))] if image_size else []
    if normalize == "dataset":
        steps.append(T.Normalize(*DATASET_STATS[dataset]))
    elif normalize == "imagenet":
        steps.append(T.Normalize(IMAGENET_MEAN, IMAGENET_STD))
    elif normalize != "none":
        raise ValueError(f"unknown normalize {normalize!r}; valid values: 'dataset', 'imagenet', 'none'")
    return T.Compose(steps) if steps else None


def experiment_parser(description, *, epochs, batch_size, lr, name=None, **extra_options):
    """The options every example has, with the recipe's defaults.

    ``extra_options`` are the recipe's own: ``weight_decay=(5e-4, "SGD weight decay")``, each a
    ``(default, help)`` pair, so ``--help`` explains every option and shows its default.
    """
    name = name or os.path.splitext(os.path.basename(sys.argv[0]))[0]
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--epochs", type=int, default=epochs, help="number of training epochs")
    parser.add_argument("--batch-size", type=int, default=batch_size, help="images per training step")
    parser.add_argument("--lr", type=float, default=lr, help="(peak) learning rate")
    parser.add_argument("--data-dir", default="data", help="folder that holds (or receives) the data set archives")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--out", default=os.path.join("runs", name),
                        help="folder for checkpoints, history and the curves plot")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in OUT from OUT/last.npz (with a larger --epochs: extend it)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start afresh even though OUT already holds a run (its files are replaced)")
    parser.add_argument("--seed", type=int, default=0, help="seed for initialisation, shuffling, augmentation, dropout")
    parser.add_argument("--fake-data", action="store_true",
                        help="train on random images of the data set's shapes (no download needed)")
    parser.add_argument("--fake-size", type=int, default=256, help="training images with --fake-data")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (e.g. in logs)")
    parser.add_argument("--distributed", action="store_true",
                        help="train on the processes mpirun started (MPI for --device cpu, NCCL for cuda); "
                             "--batch-size is the total over all processes (docs/distributed.md)")
    parser.add_argument("--sync-bn", action="store_true",
                        help="with --distributed: BatchNorm statistics over all processes (SyncBatchNorm)")
    for option, spec in extra_options.items():
        if not (isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], str)):
            raise TypeError(f"experiment_parser: give {option} as (default, help text), got {spec!r}")
        default, help_text = spec
        parser.add_argument("--" + option.replace("_", "-"), type=type(default), default=default, help=help_text)
    return parser


def positive_int(text):
    """argparse type for counts that must be at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


@dataclass
class ExperimentData:
    train: DataLoader
    val: DataLoader
    test: DataLoader
    num_classes: int
    image_shape: tuple


def check_device(device):
    """Exits with one clear line when ``--device`` is unknown or its GPU cannot be used."""
    try:
        target = Device(device)
        if target.type == "cuda":
            require_cupy()
    except (ValueError, RuntimeError) as error:
        sys.exit(f"--device {device}: {error}")


def load_data(args, dataset, train_transform=None, test_transform=None, val_fraction=0.0, subset=None,
              label_type="fine"):
    """Train/validation/test loaders for ``dataset`` (or FakeData of its shapes with --fake-data).

    ``val_fraction`` of the training set becomes a seeded validation split; ``subset``
    keeps a class-balanced subset of that many training images (E14's tiny CIFAR-10).
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; valid names are {sorted(DATASETS)}")
    if getattr(args, "distributed", False):
        args.device = str(processes.init_from_device(args.device))
    check_device(args.device)
    make, num_classes, image_shape = DATASETS[dataset]
    if args.fake_data:
        train_set = FakeData(args.fake_size, image_shape, num_classes, seed=args.seed, train=True)
        test_set = FakeData(max(args.fake_size // 4, 1), image_shape, num_classes, seed=args.seed, train=False)
    else:
        try:
            train_set = make(args.data_dir, True, label_type=label_type)
            test_set = make(args.data_dir, False, label_type=label_type)
        except DatasetNotFoundError as error:
            sys.exit(missing_data_message(error, dataset, args.data_dir))
        except ChecksumError as error:
            sys.exit(f"{error}\n(--data-dir is {args.data_dir!r}; --fake-data runs without data.)")
    if subset is not None:
        train_set = random_subset(train_set, min(subset, len(train_set)), seed=args.seed)
    val_set = None
    if val_fraction:
        train_set, val_set = train_val_split(train_set, val_fraction=val_fraction, seed=args.seed)
    loader = lambda data, **kw: DataLoader(data, batch_size=args.batch_size, device=args.device, **kw)
    if getattr(args, "distributed", False):
        loader = _loader_for_each_process(args)
    return ExperimentData(
        train=loader(train_set, shuffle=True, drop_last=False, transform=train_transform, seed=args.seed),
        val=loader(val_set, transform=test_transform, seed=args.seed) if val_set is not None else None,
        test=loader(test_set, transform=test_transform, seed=args.seed),
        num_classes=num_classes, image_shape=image_shape)


PYTHON_ARCHIVES = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}


def missing_data_message(error, dataset, data_dir):
    """One message for a data set that is neither in ``--data-dir`` nor downloadable, naming the option."""
    filename = getattr(error, "missing_file", None) or "the data set's files"
    lines = [f"{dataset}: {filename} is not in --data-dir {data_dir!r}"
             + (f" and {error.reason}" if getattr(error, "reason", None) else "") + "."]
    if getattr(error, "url", None):
        lines.append(f"Download it from {error.url} into {os.path.abspath(data_dir)}/ (keep its name), or pass "
                     "--data-dir FOLDER with the folder that holds it; --fake-data runs without data.")
    if dataset in PYTHON_ARCHIVES:
        python_archive = PYTHON_ARCHIVES[dataset]
        found = os.path.exists(os.path.join(data_dir, python_archive))
        lines.append(f"minidl reads only the binary version ({filename}), not the python version "
                     f"({python_archive}, whose pickles it never loads)"
                     + (f"; {python_archive} is in --data-dir but cannot be used" if found else "") + ".")
    return "\n".join(lines)


def cifar_augmentation(mean=CIFAR10_MEAN, std=CIFAR10_STD):
    """The standard CIFAR recipe: random 32x32 crop of the image padded by 4, horizontal flip, normalise."""
    return T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.Normalize(mean, std)])


def _loader_for_each_process(args):
    """DataLoaders of this process's share (DistributedSampler), args.batch_size / processes per step."""
    rank, world = processes.rank_and_world()
    if args.batch_size % world:
        sys.exit(f"--batch-size {args.batch_size} is the total over {world} processes: give a multiple of {world}")

    def loader(data, shuffle=False, drop_last=False, **kw):
        sampler = DistributedSampler(data, world, rank, shuffle=shuffle, seed=args.seed, drop_last=drop_last)
        return DataLoader(data, batch_size=args.batch_size // world, device=args.device, sampler=sampler, **kw)
    return loader


def run_experiment(args, model, optimizer, data, scheduler=None, **trainer_options):
    """Trains, evaluates on the test set (saved into the run's history and curves), and turns what can
    go wrong into one clear line and exit code instead of a traceback. Returns (trainer, test stats)."""
    with processes.stop_all_on_failure():
        return _run_experiment(args, model, optimizer, data, scheduler, **trainer_options)


def _run_experiment(args, model, optimizer, data, scheduler=None, **trainer_options):
    model.to(args.device)
    if getattr(args, "distributed", False):
        if args.sync_bn:
            model = SyncBatchNorm.convert_sync_batchnorm(model)  # the same parameters: the optimizer keeps them
        model = DistributedDataParallel(model)
    trainer = Trainer(model, optimizer, scheduler=scheduler, device=args.device, out_dir=args.out,
                      progress=not args.no_progress, **trainer_options)
    if processes.is_main_process():
        world = processes.rank_and_world()[1]
        print(f"{type(trainer.model).__name__}: {sum(p.numel() for p in model.parameters()):,} parameters; "
              f"{len(data.train)} batches of {args.batch_size} per epoch"
              + (f" ({args.batch_size // world} on each of {world} processes)" if world > 1 else "")
              + f"; writing to {args.out}")
    try:
        trainer.fit(data.train, args.epochs, val_loader=data.val, resume=args.resume,
                    overwrite=getattr(args, "overwrite", False))
        test = trainer.evaluate(data.test, "test")
        trainer.record_test(test)
    except TrainingDiverged as error:
        sys.exit(f"\n{error}")
    except TrainingInterrupted as interrupt:
        print(f"\n{interrupt}.\nTo continue: {resume_command()}", file=sys.stderr)
        sys.exit(130)
    except FileNotFoundError as error:
        if not args.resume:
            raise
        sys.exit(f"--resume: {error}")
    except FileExistsError:
        sys.exit(f"--out {args.out} already holds a run ({trainer.path('last.npz')}): add --resume to continue it, "
                 "--overwrite to start it again, or choose another --out")
    except CheckpointError as error:
        sys.exit(str(error))
    if processes.is_main_process():
        print("test: " + ", ".join(f"{key[5:]} {value:.4f}" if "loss" in key else f"{key[5:]} {100 * value:.2f}%"
                                   for key, value in test.items()))
    return trainer, test


def resume_command():
    """The command line that resumes this run: the same arguments plus --resume."""
    arguments = [a for a in sys.argv[1:] if a not in ("--resume", "--overwrite")]
    return shlex.join(["python", sys.argv[0], *arguments, "--resume"])


def trainable_parameters(model):
    """The parameters the optimizer should update (frozen ones left out)."""
    return [p for p in model.parameters() if p.requires_grad]


def count_parameters(model, trainable_only=False):
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def load_weights(path):
    """A state dict from a weights file: PyTorch's own ``.pth``/``.pt`` (torchvision's ImageNet weights as
    they are), minidl's safetensors (``minidl.save``) or a NumPy ``.npz``; read by ``minidl.load``, which
    never runs pickled code."""
    from .. import serialization
    if not os.path.exists(path):
        raise FileNotFoundError(f"no weights file at {path!r}: pass torchvision's resnet18 .pth (e.g. "
                                "~/.cache/torch/hub/checkpoints/resnet18-f37072fd.pth), or a state dict saved with "
                                "minidl.save or torch.save")
    return serialization.load(path)


def freeze_children(model, count):
    """Freezes the parameters of the first ``count`` children (``model.children()`` order); returns their names."""
    children = list(model.named_children())
    if not 0 <= count <= len(children):
        raise ValueError(f"can freeze 0 to {len(children)} children of {type(model).__name__}, got {count}")
    for _, child in children[:count]:
        child.requires_grad_(False)
    return [name for name, _ in children[:count]]


def seed_everything(seed):
    """Seeds minidl's generator (initialisation and dropout)."""
    minidl_random.manual_seed(seed)
