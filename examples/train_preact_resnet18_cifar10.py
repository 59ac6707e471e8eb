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
  here the loader's ``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip()``; pixels scaled to [0, 1] with
  no normalisation, as the report;
- L2 regularisation on kernels. Keras adds ``l2 * sum(w**2)`` to the loss, whose gradient ``2 * l2 * w`` is
  what Adam's (coupled) ``weight_decay`` adds to the gradient, so Keras ``l2`` = minidl ``weight_decay / 2``.
  The report's code puts ``l2(1e-4)`` on the 3x3 convolutions of the blocks and ``l2(1e-5)`` on the stem and
  the 1x1 shortcut convolutions, and none on biases, BatchNorm or the classifier; so this script builds
  parameter groups: weight decay 2e-4 on block convolution weights, 2e-5 on stem/shortcut weights, 0 on the
  rest (``--l2`` changes the 1e-4; the 1e-5 ones scale with it). Keras' reported loss includes the penalty,
  minidl's does not.

    python examples/train_preact_resnet18_cifar10.py
    python examples/train_preact_resnet18_cifar10.py --fake-data --epochs 1
"""
import minidl
from minidl import optim
from minidl.data import transforms as T
from minidl.models import preact_resnet18
from minidl.train.experiment import experiment_parser, load_data, run_experiment, weight_decay_groups


def report_weight_decay(l2):
    """``decay_of(name, param)`` for the report's Keras regularisers (see the module docstring)."""
    def decay_of(name, param):
        if not name.endswith("weight") or param.ndim < 2:
            return 0.0  # biases and BatchNorm: no regulariser in Keras
        if name.startswith("fc."):
            return 0.0  # the Dense layer has no kernel_regularizer
        if name.startswith("layer") and (".conv1." in name or ".conv2." in name):
            return 2 * l2  # basic_blk's 3x3 convolutions: l2(1e-4)
        return 2 * l2 / 10  # stem and 1x1 shortcut convolutions: l2(1e-5)
    return decay_of


def conv_weight_decay(l2):
    """Keras ``l2`` on every convolution kernel, nothing else (for networks not written in the report's code)."""
    return lambda name, param: 2 * l2 if param.ndim == 4 else 0.0


def report_recipe(args, model, decay_of=None):
    """The report's optimizer and scheduler: Adam (Keras defaults) + Keras ReduceLROnPlateau on val loss."""
    decay_of = decay_of or report_weight_decay(args.l2)
    optimizer = optim.Adam(weight_decay_groups(model, decay_of), lr=args.lr, eps=1e-7)
    scheduler = optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.1, patience=10, min_lr=1e-4,
                                                     keras_compatible=True)
    return optimizer, scheduler


def crop_and_flip():
    return T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()])


def main(dataset="cifar10", description=None):
    parser = experiment_parser(description or __doc__.splitlines()[0], epochs=200, batch_size=128, lr=1e-3,
                               l2=1e-4, val_fraction=0.2)
    args = parser.parse_args()
    minidl.manual_seed(args.seed)
    data = load_data(args, dataset, train_transform=crop_and_flip(), val_fraction=args.val_fraction)
    model = preact_resnet18(num_classes=data.num_classes)
    optimizer, scheduler = report_recipe(args, model)
    run_experiment(args, model, optimizer, data, scheduler)


if __name__ == "__main__":
    main()
