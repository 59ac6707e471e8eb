"""``FakeData``: generated images with CIFAR's shapes, so every script runs without the real data.

Each class has a smooth random colour pattern; a sample is its class's pattern plus
pixel noise, stored as uint8 like the real datasets.  The classes are therefore
learnable (a small network reaches high accuracy), and the same ``seed`` always gives
the same images.
"""
import numpy as np

from .dataset import InMemoryDataset


class FakeData(InMemoryDataset):
    """``size`` uint8 images of shape ``image_size`` in ``num_classes`` classes, fixed by ``seed``.

    ``train=False`` draws a different set of images from the same class patterns (a test
    set whose accuracy means something).  ``noise`` in [0, 1] is the share of noise in
    each pixel.
    """

    def __init__(self, size=1000, image_size=(3, 32, 32), num_classes=10, seed=0, train=True, noise=0.5):
        if not 0 <= noise <= 1:
            raise ValueError(f"FakeData: noise must lie in [0, 1], got {noise}")
        self.image_size, self.num_classes = tuple(image_size), int(num_classes)
        patterns = self._class_patterns(np.random.default_rng([seed, 0]))
        rng = np.random.default_rng([seed, 1 if train else 2])
        self.targets = rng.integers(0, self.num_classes, size, dtype=np.int64)
        self.images = np.empty((size, *self.image_size), dtype=np.uint8)
        for start in range(0, size, 4096):  # in chunks, so 50,000 images need no 600 MB float buffer
            stop = min(start + 4096, size)
            noise_pixels = rng.random((stop - start, *self.image_size), dtype=np.float32)
            pixels = (1 - noise) * patterns[self.targets[start:stop]] + noise * noise_pixels
            self.images[start:stop] = np.round(pixels * 255)
        self.classes = [f"class {i}" for i in range(self.num_classes)]

    def _class_patterns(self, rng):
        """One (C, H, W) pattern in [0, 1] per class: random 4×4 colour blocks, upsampled."""
        channels, height, width = self.image_size
        coarse = rng.random((self.num_classes, channels, 4, 4), dtype=np.float32)
        rows = np.arange(height) * 4 // height
        cols = np.arange(width) * 4 // width
        return coarse[:, :, rows[:, None], cols[None, :]]

