"""E9: the report's plain CNN (4 conv blocks, Dense 1024) on CIFAR-10 with its Keras recipe.

Reported: 90.29% test top-1 (best validation 91.2%). Network: ``minidl.models.plain_cnn`` (Keras defaults
kept: glorot-uniform init, BatchNorm epsilon 1e-3 / momentum 0.99).

Recipe, from the report's code:

- Adam lr 0.005 (Keras: epsilon 1e-7); batch 128; 200 epochs; 10% validation split (``r = 0.9``);
- ``LearningRateScheduler(lr_adaptive)`` with ``lr = 0.005 if epoch <= 20 else 0.0005`` (its ``elif epoch
  > 40`` branch can never run). Keras counts epochs from 0, so epochs 0..20 (the first 21) use 0.005:
  ``MultiStepLR(milestones=[21])`` (``--drop-epoch``);
- per-channel normalisation with mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.2010), applied to
  the arrays *before* augmentation, so the constant fill 0 of the shifts is the mean colour;
- ``ImageDataGenerator(horizontal_flip=True, width_shift_range=4, height_shift_range=4,
  fill_mode="constant")``: ``RandomShift(4, fill=0)`` + ``RandomHorizontalFlip()``.

    python examples/train_plaincnn_cifar10.py
    python examples/train_plaincnn_cifar10.py --fake-data --epochs 1
"""
import minidl
from minidl import optim
from minidl.data import transforms as T
from minidl.models import plain_cnn
from minidl.train.experiment import experiment_parser, load_data, run_experiment

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)


def main(dataset="cifar10", description=None):
    parser = experiment_parser(description or __doc__.splitlines()[0], epochs=200, batch_size=128, lr=0.005,
                               drop_epoch=21, val_fraction=0.1)
    args = parser.parse_args()
    minidl.manual_seed(args.seed)
    normalize = T.Normalize(MEAN, STD)
    train_transform = T.Compose([normalize, T.RandomShift(4, fill=0), T.RandomHorizontalFlip()])
    data = load_data(args, dataset, train_transform=train_transform, test_transform=normalize,
                     val_fraction=args.val_fraction)
    model = plain_cnn(num_classes=data.num_classes)
    optimizer = optim.Adam(model.parameters(), lr=args.lr, eps=1e-7)
    scheduler = optim.lr_scheduler.MultiStepLR(optimizer, milestones=[args.drop_epoch], gamma=0.1)
    run_experiment(args, model, optimizer, data, scheduler)


if __name__ == "__main__":
    main()
