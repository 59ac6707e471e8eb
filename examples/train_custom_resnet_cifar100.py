"""E7: the IE 534 homework's custom ResNet on CIFAR-100 (PyTorch; reported 60.13% top-1 after 50 epochs).

Network: ``minidl.experiments.e7_resnet``, as the report's module printout shows it (``--layout printout``,
the default): conv3x3 3->32 - ReLU - BN - Dropout2d(0.2); basic blocks 2x32, 4x64, 4x128, 2x256 with 1x1
channel up-sampling convolutions between stages and strided 1x1 shortcuts; MaxPool(4, 4); Linear(1024, 100).
The report's text differs (Dropout 0.3, a 256 -> 100 classifier, every later stage strided): ``--layout text``.
``minidl/experiments/e7.py`` sets the two side by side and says what the printout leaves open. The report took
3.5 h on its GPU.

Recipe, from the report: Adam lr 1e-3, lr 1e-4 after 30 epochs (``MultiStepLR([30], gamma=0.1)``),
batch 100 (train and test), 50 epochs; augmentation: horizontal flip p=0.2, vertical flip p=0.2, normalise
(train and test). Not given, chosen here: the normalisation statistics (CIFAR-100's per-channel mean/std);
Adam's other settings (PyTorch's defaults); no validation split (the report tracks train and test only).

    python examples/train_custom_resnet_cifar100.py
    python examples/train_custom_resnet_cifar100.py --layout text
    python examples/train_custom_resnet_cifar100.py --fake-data --epochs 1
"""
import minidl
from minidl import optim
from minidl.data import transforms as T
from minidl.experiments import e7_resnet
from minidl.experiments.e7 import LAYOUTS
from minidl.train.experiment import CIFAR100_MEAN, CIFAR100_STD, experiment_parser, load_data, run_experiment


def main():
    parser = experiment_parser(__doc__.splitlines()[0], epochs=50, batch_size=100, lr=1e-3,
                               drop_epoch=(30, "epoch after which the lr is divided by 10"),
                               flip_p=(0.2, "probability of each of the horizontal and vertical flips"),
                               val_fraction=(0.0, "share of the training images held out for validation"))
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="printout",
                        help="the network as the report's module printout shows it, or as its text describes it")
    args = parser.parse_args()
    minidl.manual_seed(args.seed)
    normalize = T.Normalize(CIFAR100_MEAN, CIFAR100_STD)
    train_transform = T.Compose([T.RandomHorizontalFlip(args.flip_p), T.RandomVerticalFlip(args.flip_p), normalize])
    data = load_data(args, "cifar100", train_transform=train_transform, test_transform=normalize,
                     val_fraction=args.val_fraction)
    model = e7_resnet(num_classes=data.num_classes, layout=args.layout)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    scheduler = optim.lr_scheduler.MultiStepLR(optimizer, milestones=[args.drop_epoch], gamma=0.1)
    run_experiment(args, model, optimizer, data, scheduler)


if __name__ == "__main__":
    main()
