"""Evaluates a trained run's checkpoint on a test set: loss, top-1, top-5 (and a few predictions).

The checkpoint (``last.npz`` or ``best.npz`` of a run) records its network (name and constructor arguments),
so the model is rebuilt from it alone (``minidl.models.from_checkpoint``); ``--model`` is needed only for a
checkpoint too old to record one. The test images are prepared as the training scripts prepare theirs:
scaled to [0, 1], normalised with the data set's mean/std (``--normalize dataset``; ``imagenet`` for the
ImageNet-pretrained runs E8/E12-E14, ``none`` for the Keras reports' runs E1-E6/E11), resized with
``--image-size`` if the run resized (E8, E13, E14).

    python examples/evaluate.py --checkpoint runs/train_resnet20_cifar10/last.npz
    python examples/evaluate.py --checkpoint runs/train_resnet20_fashion_mnist/last.npz --dataset fashion-mnist
    python examples/evaluate.py --checkpoint runs/walkthrough/last.npz --fake-data
"""
import argparse
import sys

from minidl import no_grad
from minidl.models import ArchitectureMismatch, architecture_of, describe, from_checkpoint, list_models
from minidl.train import Trainer
from minidl.train.checkpoint import CheckpointError
from minidl.train.experiment import DATASETS, evaluation_transform, load_data


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a run's checkpoint (.npz) written by the trainer")
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="cifar10", help="whose test set")
    parser.add_argument("--normalize", choices=["dataset", "imagenet", "none"], default="dataset",
                        help="the input normalisation the run trained with")
    parser.add_argument("--image-size", type=int, default=None, help="resize the images to this side first")
    parser.add_argument("--model", default=None, choices=list_models(),
                        help="network, for a checkpoint that does not record it")
    parser.add_argument("--batch-size", type=int, default=256, help="images per evaluation batch")
    parser.add_argument("--data-dir", default="data", help="folder that holds (or receives) the data set archives")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--seed", type=int, default=0, help="seed of --fake-data's images (as the run's --seed)")
    parser.add_argument("--fake-data", action="store_true", help="the fake test set of the data set's shapes")
    parser.add_argument("--fake-size", type=int, default=256, help="the run's --fake-size (the test set is a quarter)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args()


def main():
    args = parse_args()
    transform = evaluation_transform(args.dataset, args.normalize, args.image_size)
    data = load_data(args, args.dataset, test_transform=transform)  # exits with a message if the data is missing
    try:
        model = from_checkpoint(args.checkpoint, args.model, num_classes=data.num_classes) if args.model \
            else from_checkpoint(args.checkpoint)
    except FileNotFoundError:
        sys.exit(f"--checkpoint {args.checkpoint}: no such file")
    except (ArchitectureMismatch, CheckpointError, ValueError) as error:
        sys.exit(f"--checkpoint: {error}")
    model.to(args.device)
    print(f"{args.checkpoint}: {describe(architecture_of(model))}, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters")
    evaluator = Trainer(model, optimizer=None, device=args.device, progress=not args.no_progress)
    try:
        stats = evaluator.evaluate(data.test, "test")
    except ValueError as error:
        sys.exit(f"evaluating {args.checkpoint} on {args.dataset}: {error}")
    print(f"{args.dataset} test set, {len(data.test.dataset):,} images: loss {stats['test_loss']:.4f}, "
          + ", ".join(f"{key[5:]} {100 * value:.2f}%" for key, value in stats.items() if "top" in key))
    images, labels = next(iter(data.test))
    with no_grad():
        predictions = model.eval()(images.to(args.device)).argmax(1).cpu().numpy()[:8]
    print("first test images: predicted " + " ".join(map(str, predictions)) + "; labels "
          + " ".join(map(str, labels.numpy()[:8])))


if __name__ == "__main__":
    main()
