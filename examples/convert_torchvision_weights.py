"""Saves torchvision's ImageNet-pretrained ResNet-18 weights as a NumPy ``.npz`` state dict for minidl.

Run it where torch and torchvision are installed (it downloads the weights once, to torch's cache)::

    python examples/convert_torchvision_weights.py --out resnet18_imagenet.npz
    python examples/transfer_resnet18_cifar100.py --weights resnet18_imagenet.npz    # E8
    python examples/finetune_resnet18_cifar10.py --weights resnet18_imagenet.npz     # E13

The ``.npz`` holds arrays only (minidl reads it with ``np.load(allow_pickle=False)``); its keys are
torchvision's state-dict names, which ``minidl.models.resnet18(num_classes=1000, stem="imagenet")`` shares,
BatchNorm's ``num_batches_tracked`` included.
"""
import argparse
import sys

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", default="resnet18_imagenet.npz", help="the .npz file to write")
    parser.add_argument("--weights", default="IMAGENET1K_V1",
                        help="torchvision weights enum member of ResNet18_Weights")
    args = parser.parse_args()
    try:
        import torchvision
    except ImportError:
        sys.exit("convert_torchvision_weights.py needs torch and torchvision: pip install torch torchvision")
    weights = getattr(torchvision.models.ResNet18_Weights, args.weights)
    state = torchvision.models.resnet18(weights=weights).state_dict()
    np.savez(args.out, **{key: tensor.detach().cpu().numpy() for key, tensor in state.items()})
    print(f"saved {len(state)} arrays of torchvision resnet18 ({args.weights}) to {args.out}")


if __name__ == "__main__":
    main()
