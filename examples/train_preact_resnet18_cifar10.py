"""E4: the report's pre-activation ResNet-18 (BN-ELU-conv, strong dropout) on CIFAR-10, its Keras recipe.

Reported: 86.75% test top-1 (the Keras run of the report's ``cifar_class.py``/``resnet.py``).

Recipe, from the report's code:

- Adam, Keras' defaults: lr 1e-3, betas (0.9, 0.999), epsilon 1e-7 (Keras; PyTorch's default is 1e-8);
- batch 128, 200 epochs, ``validation_split=0.2`` (40,000 train / 10,000 validation; Keras takes the last
  20% of the arrays, minidl a seeded random 20%);
- ``ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=10, min_lr=1e-4)`` with Keras' rule
  (``keras_compatible=True``: reduce after ``patience`` epochs without an improvement larger than the
  absolute ``min_delta`` 1e-4);
- augmentation inside the model in Keras (``ZeroPadding2D(4)`` + ``RandomCrop(32, 32)`` + ``RandomFlip``),
  here the loader's ``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip()``: the same random crops and
  flips while training. Not the same at test time: those layers stay in the Keras model, and at inference
  ``ZeroPadding2D`` still pads the image to 40x40 while ``RandomCrop`` resizes it (bilinear) back to 32x32
  and center-crops, so the report's validation and test images are its images shrunk to 32x32 inside a black
  border (``RandomFlip`` does nothing). minidl tests on the images as they are: the report's test
  accuracy was measured on different inputs than minidl's. Pixels scaled to [0, 1], no normalisation;
- L2 regularisation on kernels. Keras adds ``l2 * sum(w**2)`` to the loss, whose gradient ``2 * l2 * w`` is
  what Adam's (coupled) ``weight_decay`` adds to the gradient, so Keras ``l2`` = minidl ``weight_decay / 2``.
  The report's code puts ``l2(1e-4)`` on the 3x3 convolutions of the blocks and ``l2(1e-5)`` on the stem and
  the 1x1 shortcut convolutions, and none on biases, BatchNorm or the classifier; so this script builds
  parameter groups: weight decay 2e-4 on block convolution weights, 2e-5 on stem/shortcut weights, 0 on the
  rest (``--l2`` changes the 1e-4; the 1e-5 ones scale with it; ``minidl.experiments.recipes``). Keras'
  reported loss includes the penalty, minidl's does not.

    python examples/train_preact_resnet18_cifar10.py
    python examples/train_preact_resnet18_cifar10.py --fake-data --epochs 1
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
    data = load_data(args, "cifar10", train_transform=crop_and_flip(), val_fraction=args.val_fraction)
    model = preact_resnet18(num_classes=data.num_classes)
    optimizer, scheduler = keras_report_recipe(model, lr=args.lr, l2=args.l2)
    run_experiment(args, model, optimizer, data, scheduler)


if __name__ == "__main__":
    main()
