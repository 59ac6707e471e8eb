"""E5: E4's pre-activation ResNet-18 and Keras recipe on CIFAR-100, reporting top-1 and top-5.

Reported: top-5 78.42%, top-1 49.40% (``loss: 2.2637 - top_k_categorical_accuracy: 0.7842 - accuracy:
0.4940``). Anchor for a ResNet-18 on CIFAR-100: 75.6% top-1 / 93.1% top-5 with SGD (see docs/experiments.md).

The recipe is E4's, unchanged (see ``train_preact_resnet18_cifar10.py``): the report's ``cifar_class.py``
ran CIFAR-100 with the same ``ResNet_N(layers=[2, 2, 2, 2])``, Adam (Keras defaults), batch 128, 200 epochs,
20% validation split, ``ReduceLROnPlateau(factor 0.1, patience 10, min_lr 1e-4)`` on the validation loss,
in-model random crop + flip, no normalisation, Keras L2 on kernels. Only the classifier has 100 outputs.
The trainer reports top-1 and top-5 every epoch (train, validation) and on the test set. As for E4, the
report's Keras model kept its ``ZeroPadding2D(4)`` + ``RandomCrop`` layers at test time (each test image
padded to 40x40 and resized back to 32x32), so its test images differ from minidl's, which are used as they are.

    python examples/train_resnet18_cifar100.py
    python examples/train_resnet18_cifar100.py --fake-data --epochs 1
"""
import minidl
from minidl.experiments import preact_resnet18
from minidl.experiments.recipes import crop_and_flip, keras_report_recipe
from minidl.train.experiment import experiment_parser, load_data, run_experiment


def main():
    parser = experiment_parser(__doc__.splitlines()[0], epochs=200, batch_size=128, lr=1e-3,
                               l2=(1e-4, "Keras L2 of the blocks' 3x3 kernels (weight decay = 2 x l2)"),
                               val_fraction=(0.2, "share of the training images held out for validation"))
    args = parser.parse_args()
    minidl.manual_seed(args.seed)
    data = load_data(args, "cifar100", train_transform=crop_and_flip(), val_fraction=args.val_fraction)
    model = preact_resnet18(num_classes=data.num_classes)
    optimizer, scheduler = keras_report_recipe(model, lr=args.lr, l2=args.l2)
    run_experiment(args, model, optimizer, data, scheduler)


if __name__ == "__main__":
    main()
