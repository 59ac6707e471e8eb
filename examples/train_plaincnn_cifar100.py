"""E10: E9's plain CNN and Keras recipe on CIFAR-100, reporting top-1 and top-5.

Reported: top-1 57.44%, top-5 83.74%. The report's CIFAR-100 code is E9's with ``cifar100.load_data()``,
100 output classes and the same normalisation constants (CIFAR-10's mean/std, as in its code). Recipe as
``train_plaincnn_cifar10.py``: Adam lr 0.005 (epsilon 1e-7), ÷10 from epoch 21 (Keras' ``epoch > 20``),
batch 128, 200 epochs, 10% validation split, normalise then h-flip + ±4 px constant-fill shifts.
The trainer reports top-1 and top-5 every epoch and on the test set.

    python examples/train_plaincnn_cifar100.py
    python examples/train_plaincnn_cifar100.py --fake-data --epochs 1
"""
from train_plaincnn_cifar10 import main

if __name__ == "__main__":
    main("cifar100", __doc__.splitlines()[0])
