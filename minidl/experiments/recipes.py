"""The reports' training recipes that more than one example script uses.

- The Keras report's ``cifar_class.py`` (E1, E3-E6): Adam with Keras' defaults, Keras' ``ReduceLROnPlateau``
  on the validation loss, L2 on convolution kernels, random crop + flip (``keras_report_recipe``).
- E9/E10's Keras data pipeline, as its code ran it or as its text describes it (``e9_pipeline``).
- E8/E13's ImageNet-pretrained ResNet-18 (``imagenet_resnet18``).
"""
from dataclasses import dataclass

from .. import optim
from ..data import transforms as T
from ..models import resnet18


def crop_and_flip(size=32, padding=4):
    """A random ``size`` crop of the image zero-padded by ``padding``, then a horizontal flip (p = 0.5)."""
    return T.Compose([T.RandomCrop(size, padding=padding), T.RandomHorizontalFlip()])


def weight_decay_groups(model, decay_of):
    """Parameter groups for an optimizer, one per weight-decay value.

    ``decay_of(name, param) -> float`` gives each trainable parameter's decay (e.g. 0 for
    BatchNorm and biases); frozen parameters (``requires_grad=False``) are left out::

        optim.SGD(weight_decay_groups(model, lambda name, p: 5e-4 if p.ndim > 1 else 0.0), lr=0.1)
    """
    groups = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups.setdefault(float(decay_of(name, param)), []).append(param)
    return [{"params": params, "weight_decay": decay} for decay, params in groups.items()]


def report_weight_decay(l2):
    """``decay_of(name, param)`` for the report's ``resnet.py`` Keras regularisers (E4/E5's network).

    Keras adds ``l2 * sum(w**2)`` to the loss, whose gradient ``2 * l2 * w`` is what Adam's coupled
    ``weight_decay`` adds to the gradient: Keras ``l2`` = minidl ``weight_decay / 2``. The code puts
    ``l2(1e-4)`` on the blocks' 3x3 convolutions, ``l2(1e-5)`` on the stem and the 1x1 shortcut
    convolutions, none on biases, BatchNorm or the classifier.
    """
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


def keras_report_recipe(model, lr=1e-3, decay_of=None, l2=1e-4):
    """``cifar_class.py``'s optimizer and scheduler: ``Adam()`` (Keras defaults: epsilon 1e-7) with L2 as
    ``decay_of`` (default ``report_weight_decay(l2)``) and ``ReduceLROnPlateau(monitor="val_loss", min_lr=1e-4)``
    with Keras' defaults (factor 0.1, patience 10) and Keras' rule (``keras_compatible=True``)."""
    optimizer = optim.Adam(weight_decay_groups(model, decay_of or report_weight_decay(l2)), lr=lr, eps=1e-7)
    scheduler = optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.1, patience=10, min_lr=1e-4,
                                                     keras_compatible=True)
    return optimizer, scheduler


# ------------------------------------------------------------------------------------------ E9/E10
E9_MEAN, E9_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)


@dataclass
class E9Pipeline:
    """E9/E10's normalisation, augmentation and learning-rate schedule (see ``e9_pipeline``)."""
    normalize: T.Normalize
    train_transform: T.Transform
    milestones: list


def e9_pipeline(recipe="code", drop_epoch=21):
    """E9/E10's Keras pipeline. ``recipe="code"`` is what the report's code did, ``"text"`` what it says.

    code: ``normalize`` loops ``for i in range(0, 2)``, so only the red and green channels are standardised (blue
    stays in [0, 1]); ``ImageDataGenerator(width_shift_range=4, height_shift_range=4)`` draws integer shifts as
    ``choice(4) * choice([-1, 1])``, i.e. -3..3 (``RandomShift(4, keras_integer=True)``); and
    ``LearningRateScheduler(lr_adaptive)`` calls ``lr_adaptive(epoch, lr)`` on a function declared
    ``lr_adaptive(self, epoch)``, so ``epoch`` receives the current lr (0.005), ``lr > 20`` is never true and
    the rate stays 0.005 for all 200 epochs (the report's log shows no change at epoch 21): no milestones.

    text: all three channels standardised with the listed mean/std, shifts of up to 4 pixels (-4..4), and the
    rate divided by 10 after epoch 20 (Keras counts epochs from 0: epochs 0..20 at 0.005, ``MultiStepLR`` at
    ``drop_epoch`` = 21).

    Both normalise before augmenting (the generator receives normalised arrays), so the constant fill 0 of a
    shift is the mean colour in the standardised channels.
    """
    if recipe == "code":
        normalize = T.Normalize((E9_MEAN[0], E9_MEAN[1], 0.0), (E9_STD[0], E9_STD[1], 1.0))
        shift, milestones = T.RandomShift(4, fill=0, keras_integer=True), []
    elif recipe == "text":
        normalize = T.Normalize(E9_MEAN, E9_STD)
        shift, milestones = T.RandomShift(4, fill=0), [drop_epoch]
    else:
        raise ValueError(f"unknown E9 recipe {recipe!r}; valid recipes: 'code', 'text'")
    return E9Pipeline(normalize, T.Compose([normalize, shift, T.RandomHorizontalFlip()]), milestones)


# ------------------------------------------------------------------------------------------ E8/E13
def imagenet_resnet18(weights_path=None, load_state_dict=None):
    """torchvision's ResNet-18 (1000 classes, ImageNet stem), with the weights at ``weights_path`` if given.

    ``load_state_dict(path)`` reads the file (``minidl.train.experiment.load_weights``: torchvision's own
    ``.pth`` as it is, or a minidl/``.npz`` state dict); a missing file raises ``FileNotFoundError``.
    """
    model = resnet18(num_classes=1000, stem="imagenet")
    if weights_path:
        if load_state_dict is None:
            from ..train.experiment import load_weights as load_state_dict
        model.load_state_dict(load_state_dict(weights_path))
    return model
