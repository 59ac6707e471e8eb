"""E10: E9's plain CNN and Keras recipe on CIFAR-100, reporting top-1 and top-5.

Reported: top-1 57.44%, top-5 83.74%. The report's CIFAR-100 code is E9's with ``cifar100.load_data()``,
100 output classes and the same normalisation constants (CIFAR-10's mean/std, as in its code). Recipe as
``train_plaincnn_cifar10.py``, including its ``--recipe code`` (default: what the code did, a constant lr 0.005,
only channels 0-1 normalised, shifts -3..3) and ``--recipe text`` (lr / 10 from epoch 21, all channels,
shifts ±4): batch 128, 200 epochs, 10% validation split, normalise then h-flip + constant-fill shifts.
The trainer reports top-1 and top-5 every epoch and on the test set.

    python examples/train_plaincnn_cifar100.py
    python examples/train_plaincnn_cifar100.py --fake-data --epochs 1
"""
import minidl
from minidl import optim
from minidl.experiments import plain_cnn
from minidl.experiments.recipes import e9_pipeline
from minidl.train.experiment import experiment_parser, load_data, run_experiment

DATASET = "cifar100"


def main():
    parser = experiment_parser(__doc__.splitlines()[0], epochs=200, batch_size=128, lr=0.005,
                               drop_epoch=(21, "with --recipe text: the epoch from which the lr is divided by 10"),
                               val_fraction=(0.1, "share of the training images held out for validation"))
    parser.add_argument("--recipe", choices=["code", "text"], default="code",
                        help="what the report's code did (constant lr, 2 channels normalised, shifts -3..3) or "
                             "what it describes (lr / 10 after epoch 20, 3 channels, shifts -4..4)")
    args = parser.parse_args()
    minidl.manual_seed(args.seed)
    pipeline = e9_pipeline(args.recipe, args.drop_epoch)
    data = load_data(args, DATASET, train_transform=pipeline.train_transform, test_transform=pipeline.normalize,
                     val_fraction=args.val_fraction)
    model = plain_cnn(num_classes=data.num_classes)
    optimizer = optim.Adam(model.parameters(), lr=args.lr, eps=1e-7)
    scheduler = optim.lr_scheduler.MultiStepLR(optimizer, milestones=pipeline.milestones, gamma=0.1)
    run_experiment(args, model, optimizer, data, scheduler)


if __name__ == "__main__":
    main()
