"""E13: fine-tuning ImageNet-pretrained ResNet-18 on CIFAR-10, whole or with its first children frozen.

Reported (test top-1, 20 epochs): fine-tuned 80.5%; "first 6 children frozen" 79.1%; "first 10 children
frozen" (a fixed feature extractor) 49.1%.

Recipe, from the report: ``torchvision.models.resnet18(pretrained=True)``; freeze; ``fc = Linear(512, 10)``;
Adam lr 1e-3; ``CosineAnnealingLR(T_max=200)`` stepped per epoch over 20 epochs (``--t-max``); batch 128;
40k/10k train/validation split. Not given, chosen here: normalisation (ImageNet's mean/std, which the
weights expect; the report says "as the previous problem"); no resize (the report mentions none, so
the 32x32 images go in as they are; ``--image-size 224`` resizes as E8 does); no augmentation.

Freezing: ``--freeze-children N`` sets ``requires_grad=False`` on the parameters of the first N of the
model's children (conv1, bn1, relu, maxpool, layer1, layer2, layer3, layer4, avgpool, fc), *before*
``fc`` is replaced, as the report did, so the new ``fc`` always trains. The frozen parameters are left out
of the optimizer. Note that the report's loop (``count += 1; if count < 6: freeze``) freezes the first 5
children (conv1..layer1) for "6" and the first 9 (all but fc) for "10": ``--freeze-children 5``
reproduces its "6" run exactly; 9 and 10 are the same run, since fc is replaced. BatchNorm layers in
frozen children still update their running statistics in training mode, as in PyTorch.

    python examples/finetune_resnet18_cifar10.py --weights resnet18-f37072fd.pth
    python examples/finetune_resnet18_cifar10.py --weights resnet18-f37072fd.pth --freeze-children 10
    python examples/finetune_resnet18_cifar10.py --fake-data --epochs 1 --freeze-children 6
"""
import sys

import minidl
from minidl import nn, optim
from minidl.data import transforms as T
from minidl.experiments.recipes import imagenet_resnet18
from minidl.models import set_architecture
from minidl.train.experiment import (IMAGENET_MEAN, IMAGENET_STD, count_parameters, experiment_parser,
                                     freeze_children, load_data, run_experiment, trainable_parameters)


def main():
    parser = experiment_parser(__doc__.splitlines()[0], epochs=20, batch_size=128, lr=1e-3,
                               t_max=(200, "CosineAnnealingLR's T_max in epochs (the report's 200, over 20 epochs)"),
                               image_size=(32, "resize the images to this side (224: as E8)"),
                               val_fraction=(0.2, "share of the training images held out for validation"))
    parser.add_argument("--weights", default=None,
                        help="torchvision's resnet18 ImageNet .pth, used as it is (see transfer_resnet18_cifar100.py)")
    parser.add_argument("--freeze-children", type=int, default=0,
                        help="freeze the first N children (report: 0, 6 or 10; see the docstring)")
    args = parser.parse_args()
    minidl.manual_seed(args.seed)
    steps = [T.Resize((args.image_size, args.image_size))] if args.image_size != 32 else []
    transform = T.Compose(steps + [T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    data = load_data(args, "cifar10", train_transform=transform, test_transform=transform,
                     val_fraction=args.val_fraction)
    try:
        model = imagenet_resnet18(args.weights)
    except FileNotFoundError as error:
        sys.exit(str(error))
    print(f"loaded ImageNet-pretrained weights from {args.weights}" if args.weights else
          "no --weights given: training ResNet-18 from random initialisation, not the pretrained network of the "
          "experiment; pass torchvision's resnet18-f37072fd.pth with --weights")
    frozen = freeze_children(model, args.freeze_children)
    model.fc = nn.Linear(model.fc.in_features, data.num_classes)
    set_architecture(model, "resnet18", num_classes=data.num_classes, stem="imagenet")  # what it is now
    print(f"frozen children: {', '.join(frozen) or 'none'}; "
          f"{count_parameters(model, trainable_only=True):,} of {count_parameters(model):,} parameters train")
    optimizer = optim.Adam(trainable_parameters(model), lr=args.lr)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.t_max)
    run_experiment(args, model, optimizer, data, scheduler)


if __name__ == "__main__":
    main()
