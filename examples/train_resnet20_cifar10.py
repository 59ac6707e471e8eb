"""ResNet-20 on CIFAR-10 (E2): He et al.'s 0.27M-parameter net and recipe, or the report's own ResNet-20.

E2's report reached ~80% with a "ResNet-20" (Keras; recipe not given beyond random crop + flip); the anchor is
He et al. 2016: 91.25% (a PyTorch re-implementation: 91.73%), with the paper's option-A shortcuts (zero
padding, no parameters: 269,722 parameters, the "0.27M" of the paper). The default is that anchor:

- ``--network he`` (default): ``minidl.models.resnet20``, 16/32/64 channels; ``--shortcut zero_pad`` (default,
  option A) or ``projection`` (option B: 1x1 conv + BN where the shape changes, 272,474 parameters);
- ``--recipe anchor`` (default): SGD lr 0.1, momentum 0.9, weight decay 1e-4 (on every parameter, as the
  paper), batch 128; the lr divided by 10 at 32k and 48k iterations, training stopped at 64k. The schedule is
  kept in iterations (a ``MultiStepLR`` stepped every batch), the epoch count is ceil(64000 / batches per
  epoch): 164 epochs on the 50,000 training images (391 batches). With ``--epochs E`` the drops move to 50%
  and 75% of E epochs' iterations. Random 32x32 crop of the image padded by 4 + horizontal flip; per-channel
  normalisation (the paper subtracts the per-pixel mean). He et al. trained on 45k images and validated on
  5k; their test numbers use all 50k (``--val-fraction 0``, the default).

What the report most likely ran: its only model code is ``ResNet_N(layers)``, which names its network
``"ResNet-" + str(2 * sum(layers) + 2)``, so its ResNet-20 was ``ResNet_N(layers=[3, 3, 3])``: pre-activation
ELU blocks with dropout 0.5, 64/128/256 channels, a stride-2 stem (``minidl.experiments.report_resnet(20)``,
``--network report``), trained with its ``cifar_class.py`` recipe (``--recipe report``: Adam with Keras'
defaults, Keras ``ReduceLROnPlateau(factor 0.1, patience 10, min_lr 1e-4)`` on the validation loss, L2 on the
kernels, 20% validation split, 200 epochs, crop + flip, no normalisation; see train_preact_resnet18_cifar10.py).

    python examples/train_resnet20_cifar10.py
    python examples/train_resnet20_cifar10.py --shortcut projection
    python examples/train_resnet20_cifar10.py --network report --recipe report
    python examples/train_resnet20_cifar10.py --fake-data --epochs 1
"""
import math

import minidl
from minidl import optim
from minidl.data import transforms as T
from minidl.experiments import report_resnet
from minidl.experiments.recipes import crop_and_flip, keras_report_recipe
from minidl.models import resnet20
from minidl.train.experiment import (CIFAR10_MEAN, CIFAR10_STD, cifar_augmentation, experiment_parser, load_data,
                                     run_experiment)

TOTAL_ITERATIONS, DROP_ITERATIONS = 64_000, (32_000, 48_000)


def schedule_in_iterations(epochs, batches_per_epoch):
    """(epochs, milestones in iterations): the paper's 64k/32k/48k, or 50%/75% of ``epochs`` when given."""
    if epochs is None:
        return math.ceil(TOTAL_ITERATIONS / batches_per_epoch), list(DROP_ITERATIONS)
    total = epochs * batches_per_epoch
    return epochs, [round(total * d / TOTAL_ITERATIONS) for d in DROP_ITERATIONS]


def main():
    parser = experiment_parser(__doc__.splitlines()[0], epochs=None, batch_size=128, lr=None,
                               momentum=(0.9, "SGD momentum (anchor recipe)"),
                               weight_decay=(1e-4, "SGD weight decay (anchor recipe)"),
                               l2=(1e-4, "Keras L2 on the kernels (report recipe; weight decay = 2 x l2)"))
    parser.add_argument("--network", choices=["he", "report"], default="he",
                        help="He et al.'s ResNet-20 or the report's ResNet_N([3, 3, 3])")
    parser.add_argument("--shortcut", choices=["zero_pad", "projection"], default="zero_pad",
                        help="He et al.'s shortcut where the shape changes: zero padding (A) or 1x1 conv + BN (B)")
    parser.add_argument("--recipe", choices=["anchor", "report"], default="anchor",
                        help="He et al.'s SGD recipe or the report's Keras Adam + plateau recipe")
    parser.add_argument("--val-fraction", type=float, default=None,
                        help="validation split (default: 0 for the anchor recipe, 0.2 for the report's)")
    args = parser.parse_args()
    report = args.recipe == "report"
    val_fraction = args.val_fraction if args.val_fraction is not None else (0.2 if report else 0.0)
    minidl.manual_seed(args.seed)
    if report:
        data = load_data(args, "cifar10", train_transform=crop_and_flip(), val_fraction=val_fraction)
    else:
        data = load_data(args, "cifar10", train_transform=cifar_augmentation(CIFAR10_MEAN, CIFAR10_STD),
                         test_transform=T.Normalize(CIFAR10_MEAN, CIFAR10_STD), val_fraction=val_fraction)
    if args.network == "he":
        model = resnet20(num_classes=data.num_classes, shortcut=args.shortcut)
    else:
        model = report_resnet(depth=20, num_classes=data.num_classes)
    if report:
        args.epochs = args.epochs or 200
        optimizer, scheduler = keras_report_recipe(model, lr=args.lr or 1e-3, l2=args.l2)
        run_experiment(args, model, optimizer, data, scheduler)
        return
    args.epochs, milestones = schedule_in_iterations(args.epochs, len(data.train))
    print(f"{args.epochs} epochs of {len(data.train)} iterations; lr / 10 at iterations {milestones}")
    optimizer = optim.SGD(model.parameters(), lr=args.lr or 0.1, momentum=args.momentum,
                          weight_decay=args.weight_decay)
    scheduler = optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    run_experiment(args, model, optimizer, data, scheduler, scheduler_interval="step")


if __name__ == "__main__":
    main()
