"""E8: transfer learning: torchvision's ImageNet-pretrained ResNet-18 with a new classifier on CIFAR-100.

Reported: 75.37% test top-1 after 5 epochs (1.5 h on the report's GPU).

Recipe, from the report: ``torchvision.models.resnet18(pretrained=True)``, ``model.fc = Linear(512, 100)``,
images resized to 224x224 (``transforms.Resize``, train and test), SGD lr 0.01, 5 epochs, batch 100.
Not given, chosen here: SGD's momentum and weight decay (the report's code shows ``SGD(lr=0.01)`` only:
PyTorch's defaults, 0 and 0); normalisation statistics (ImageNet's mean/std, which the pretrained weights
expect); augmentation (the report's part A flips, horizontal and vertical with p=0.2, since it says the
training loader augments); no validation split.

Weights: ``--weights PATH`` is torchvision's ImageNet ``resnet18`` checkpoint as PyTorch saved it,
``resnet18-f37072fd.pth`` (the file ``torchvision.models.resnet18(weights="IMAGENET1K_V1")`` downloads to
``~/.cache/torch/hub/checkpoints/``), used directly: ``minidl.load`` reads PyTorch's format without PyTorch
and without running its pickle (a minidl ``.safetensors`` or an ``.npz`` state dict works too). It loads
into ``minidl.models.resnet18(num_classes=1000, stem="imagenet")`` (torchvision's form and names) before
``fc`` is replaced. Without ``--weights`` the network trains from scratch, which is not E8 (and far slower to
learn); the script says so. ``--image-size`` (default 224) sets the resize; 224 costs 49x the compute of 32.

    python examples/transfer_resnet18_cifar100.py --weights resnet18-f37072fd.pth
    python examples/transfer_resnet18_cifar100.py --fake-data --epochs 1 --image-size 64
"""
import sys

import minidl
from minidl import nn, optim
from minidl.data import transforms as T
from minidl.experiments.recipes import imagenet_resnet18
from minidl.models import set_architecture
from minidl.train.experiment import IMAGENET_MEAN, IMAGENET_STD, experiment_parser, load_data, run_experiment


def main():
    parser = experiment_parser(__doc__.splitlines()[0], epochs=5, batch_size=100, lr=0.01,
                               momentum=(0.0, "SGD momentum (the report's code shows none)"),
                               weight_decay=(0.0, "SGD weight decay"),
                               image_size=(224, "resize the 32x32 images to this side"),
                               flip_p=(0.2, "probability of each of the horizontal and vertical flips"),
                               val_fraction=(0.0, "share of the training images held out for validation"))
    parser.add_argument("--weights", default=None,
                        help="torchvision's resnet18 ImageNet .pth as it is (or a minidl .safetensors / .npz state dict)")
    args = parser.parse_args()
    minidl.manual_seed(args.seed)
    resize, normalize = T.Resize((args.image_size, args.image_size)), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    train_transform = T.Compose([resize, T.RandomHorizontalFlip(args.flip_p), T.RandomVerticalFlip(args.flip_p),
                                 normalize])
    data = load_data(args, "cifar100", train_transform=train_transform, test_transform=T.Compose([resize, normalize]),
                     val_fraction=args.val_fraction)
    try:
        model = imagenet_resnet18(args.weights)
    except FileNotFoundError as error:
        sys.exit(str(error))
    print(f"loaded ImageNet-pretrained weights from {args.weights}" if args.weights else
          "no --weights given: training ResNet-18 from scratch (random initialisation), not the pretrained "
          "network of the experiment; pass torchvision's resnet18-f37072fd.pth with --weights")
    model.fc = nn.Linear(model.fc.in_features, data.num_classes)
    set_architecture(model, "resnet18", num_classes=data.num_classes, stem="imagenet")  # what it is now
    optimizer = optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    run_experiment(args, model, optimizer, data)


if __name__ == "__main__":
    main()
