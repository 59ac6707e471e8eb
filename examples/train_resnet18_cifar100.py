"""E5: E4's pre-activation ResNet-18 and Keras recipe on CIFAR-100, reporting top-1 and top-5.

Reported: top-5 78.42%, top-1 49.40% (``loss: 2.2637 - top_k_categorical_accuracy: 0.7842 - accuracy:
0.4940``). Anchor for a ResNet-18 on CIFAR-100: 75.6% top-1 / 93.1% top-5 with SGD (see EXPERIMENTS.md).

The recipe is E4's, unchanged (see ``train_preact_resnet18_cifar10.py``): the report's ``cifar_class.py``
ran CIFAR-100 with the same ``ResNet_N(layers=[2, 2, 2, 2])``, Adam (Keras defaults), batch 128, 200 epochs,
20% validation split, ``ReduceLROnPlateau(factor 0.1, patience 10, min_lr 1e-4)`` on the validation loss,
in-model random crop + flip, no normalisation, Keras L2 on kernels. Only the classifier has 100 outputs.
The trainer reports top-1 and top-5 every epoch (train, validation) and on the test set.

    python examples/train_resnet18_cifar100.py
    python examples/train_resnet18_cifar100.py --fake-data --epochs 1
"""
from train_preact_resnet18_cifar10 import main

if __name__ == "__main__":
    main("cifar100", __doc__.splitlines()[0])
