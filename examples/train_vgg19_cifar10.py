"""E1: the report's VGG-19-like network (deep conv-BN stacks, no residuals) on CIFAR-10 with Adam and a
step learning-rate drop (reported: ~70% test top-1; anchor for VGG-19 with BN: 92.6-94.0% with SGD).

The report shows the loss spiking and accuracy collapsing ("vanishing gradients") under Adam until it
"shaves off the learning rate after a fixed number of epochs". Its VGG code and recipe are not shown; it
shares the report's ``cifar_class.py`` (Keras), so the defaults follow that script where E1 says nothing.

Recipe: Adam (Keras defaults: lr 1e-3, epsilon 1e-7); ``StepLR``-style single drop: lr x ``--drop-factor``
(0.1) after ``--drop-epoch`` epochs. Not given, chosen here: the drop epoch (default 50 of 100 epochs;
``--drop-epoch 0`` turns the drop off to see the spikes), the epochs (100), batch 128 and the 20%
validation split of ``cifar_class.py``; no augmentation and no normalisation (the report adds crop + flip
only when it moves to ResNets; ``--augment`` adds them); the network is ``minidl.models.vgg19_like``
(VGG-19's 16 conv-BN-ReLU layers, 512-512 classifier with dropout 0.5).

    python examples/train_vgg19_cifar10.py
    python examples/train_vgg19_cifar10.py --drop-epoch 0     # no drop: the unstable run
    python examples/train_vgg19_cifar10.py --fake-data --epochs 1
"""
import minidl
from minidl import optim
from minidl.experiments.recipes import crop_and_flip
from minidl.models import vgg19_like
from minidl.train.experiment import experiment_parser, load_data, run_experiment


def main():
    parser = experiment_parser(__doc__.splitlines()[0], epochs=100, batch_size=128, lr=1e-3,
                               drop_epoch=(50, "epoch after which the lr is multiplied by --drop-factor (0: never)"),
                               drop_factor=(0.1, "the lr drop's factor"),
                               val_fraction=(0.2, "share of the training images held out for validation"))
    parser.add_argument("--augment", action="store_true", help="random crop (pad 4) + horizontal flip")
    args = parser.parse_args()
    minidl.manual_seed(args.seed)
    data = load_data(args, "cifar10", train_transform=crop_and_flip() if args.augment else None,
                     val_fraction=args.val_fraction)
    model = vgg19_like(num_classes=data.num_classes)
    optimizer = optim.Adam(model.parameters(), lr=args.lr, eps=1e-7)
    milestones = [args.drop_epoch] if args.drop_epoch > 0 else []
    scheduler = optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=args.drop_factor)
    run_experiment(args, model, optimizer, data, scheduler)


if __name__ == "__main__":
    main()
