"""E11: the configurable ResNet under 5M parameters on CIFAR-10, the report's final recipe.

Reported: 94.80% test top-1 with combination 6 (N=3 layers, C1=64, B=[3, 3, 3]; 4,327,754 parameters),
train 99.99%. Network: ``minidl.experiments.e11_resnet(combination)``, the standard CIFAR ResNet layout (3x3 stem,
basic blocks with 3x3 convs, 1x1 projection shortcuts, global average pool, one linear layer); combinations
3, 5 and 6 have exactly the report's parameter counts, the others minidl's own (see
``minidl/experiments/e11.py``). The script prints both.

Recipe, from the report: SGD lr 0.01809, batch 128, 200 epochs, random crop + horizontal flip, no input
normalisation (pixels in [0, 1]; the report found normalisation hurt), cosine annealing, dropout. Not given,
chosen here: momentum 0.9 and weight decay 5e-4 (the public CIFAR ResNet recipe; ``--momentum 0
--weight-decay 0`` gives plain ``optim.SGD(params, lr)``), cosine over all epochs (``T_max=epochs``), crop
padding 4; the dropout rate and place (``--dropout P`` puts ``Dropout(P)`` before the classifier; default
0, off). The hyper-parameters came from ``search_configurable_resnet.py`` (E11's ASHA search).

    python examples/train_configurable_resnet_cifar10.py                  # combination 6
    python examples/train_configurable_resnet_cifar10.py --combination 1
    python examples/train_configurable_resnet_cifar10.py --fake-data --epochs 1
"""
import minidl
from minidl import optim
from minidl.experiments import E11_CONFIGS, E11_REPORTED_PARAMS, e11_resnet
from minidl.experiments.recipes import crop_and_flip
from minidl.train.experiment import count_parameters, experiment_parser, load_data, run_experiment


def describe(model, combination):
    config = E11_CONFIGS[combination]
    print(f"E11 combination {combination}: N={len(config['num_blocks'])}, C1={config['c1']}, "
          f"B={config['num_blocks']}: {count_parameters(model):,} parameters "
          f"(the report: {E11_REPORTED_PARAMS[combination]:,})")


def main():
    parser = experiment_parser(__doc__.splitlines()[0], epochs=200, batch_size=128, lr=0.01809,
                               momentum=(0.9, "SGD momentum (not given by the report)"),
                               weight_decay=(5e-4, "SGD weight decay (not given by the report)"),
                               dropout=(0.0, "Dropout(p) before the classifier (0: none)"),
                               val_fraction=(0.0, "share of the training images held out for validation"))
    parser.add_argument("--combination", type=int, choices=sorted(E11_CONFIGS), default=6,
                        help="which of the report's 8 architectures")
    parser.add_argument("--optimizer", choices=["SGD", "Adam", "Adagrad"], default="SGD",
                        help="the optimizer (the report's search tried all three; SGD won for combination 6)")
    args = parser.parse_args()
    minidl.manual_seed(args.seed)
    data = load_data(args, "cifar10", train_transform=crop_and_flip(), val_fraction=args.val_fraction)
    model = e11_resnet(combination=args.combination, num_classes=data.num_classes, dropout=args.dropout)
    describe(model, args.combination)
    if args.optimizer == "SGD":
        optimizer = optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    else:
        optimizer = getattr(optim, args.optimizer)(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    run_experiment(args, model, optimizer, data, scheduler)


if __name__ == "__main__":
    main()
