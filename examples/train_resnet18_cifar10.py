"""ResNet-18 (CIFAR form) on CIFAR-10 with the public recipe that reaches 93-95%.

Recipe: SGD lr 0.1, momentum 0.9, weight decay 5e-4, batch 128, cosine annealing over
200 epochs, random crop (padding 4) + horizontal flip, per-channel normalisation.

    python examples/train_resnet18_cifar10.py                       # the full run
    python examples/train_resnet18_cifar10.py --fake-data --epochs 1  # a smoke run, no download
    python examples/train_resnet18_cifar10.py --resume              # continue runs/train_resnet18_cifar10
"""
import minidl
from minidl import optim
from minidl.data import transforms as T
from minidl.models import resnet18
from minidl.train.experiment import (CIFAR10_MEAN, CIFAR10_STD, cifar_augmentation, experiment_parser, load_data,
                                     run_experiment)


def main():
    parser = experiment_parser(__doc__.splitlines()[0], epochs=200, batch_size=128, lr=0.1,
                               momentum=(0.9, "SGD momentum"), weight_decay=(5e-4, "SGD weight decay"),
                               val_fraction=(0.0, "share of the training images held out for validation"))
    args = parser.parse_args()
    minidl.manual_seed(args.seed)
    data = load_data(args, "cifar10", train_transform=cifar_augmentation(CIFAR10_MEAN, CIFAR10_STD),
                     test_transform=T.Normalize(CIFAR10_MEAN, CIFAR10_STD), val_fraction=args.val_fraction)
    model = resnet18(num_classes=data.num_classes)
    optimizer = optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    run_experiment(args, model, optimizer, data, scheduler)


if __name__ == "__main__":
    main()
