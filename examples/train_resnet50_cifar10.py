"""E3: ResNet-50 (bottleneck blocks, CIFAR stem) on CIFAR-10 with the report's Keras recipe.

Reported: 75% ("unoptimized and poorly implemented", in the report's words). Anchor: a CIFAR ResNet-50
trained with SGD + cosine reaches ~95% (the ``train_resnet18_cifar10.py`` recipe works for it too:
that script's optimizer with ``resnet50``).

The report gives E3's recipe only as "random cropping and flipping"; its only training code is the
``cifar_class.py`` it used for all its ResNets, so this script takes E4's recipe from there (see
``train_preact_resnet18_cifar10.py``): Adam (Keras defaults, lr 1e-3, epsilon 1e-7), batch 128, 200 epochs,
20% validation split, Keras ``ReduceLROnPlateau(factor 0.1, patience 10, min_lr 1e-4)`` on the validation
loss, random crop (pad 4) + horizontal flip, pixels in [0, 1] without normalisation.
Not given, chosen here: the network is minidl's (torchvision's) ResNet-50 with the CIFAR stem (3x3 conv,
no max-pool; 23.5M parameters), since the report's own ResNet-50 code is not shown; Keras-style L2 1e-4 on
every convolution kernel (weight decay 2e-4 on conv weights, none on BatchNorm, biases or the classifier).

    python examples/train_resnet50_cifar10.py
    python examples/train_resnet50_cifar10.py --fake-data --epochs 1
"""
import minidl
from minidl.models import resnet50
from minidl.train.experiment import experiment_parser, load_data, run_experiment
from train_preact_resnet18_cifar10 import conv_weight_decay, crop_and_flip, report_recipe


def main():
    parser = experiment_parser(__doc__.splitlines()[0], epochs=200, batch_size=128, lr=1e-3,
                               l2=1e-4, val_fraction=0.2)
    args = parser.parse_args()
    minidl.manual_seed(args.seed)
    data = load_data(args, "cifar10", train_transform=crop_and_flip(), val_fraction=args.val_fraction)
    model = resnet50(num_classes=data.num_classes)
    optimizer, scheduler = report_recipe(args, model, conv_weight_decay(args.l2))
    run_experiment(args, model, optimizer, data, scheduler)


if __name__ == "__main__":
    main()
