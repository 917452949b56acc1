"""scikit-learn's handwritten digits (1,797 real 8x8 scans, shipped inside the package) as an
ImageNet-style folder that mmpretrain's ``CustomDataset`` reads, deterministically::

    ROOT/train/0/0001.png ... ROOT/train/9/...     (the training split)
    ROOT/val/0/0007.png   ... ROOT/val/9/...       (the held-out split)

Each scan (16 grey levels) is scaled to 0-255, upsampled to ``size`` x ``size`` (bicubic, so
strokes stay smooth) and saved as an RGB PNG named after its index in ``load_digits()``. The split
is stratified: ``val_fraction`` of each digit, chosen by a seeded permutation.

Written by ``tools/misc/make_digits.py``; trained on by ``configs/demo/rapidnet_ti_digits.py``.
"""
import os
import os.path as osp
from typing import Dict

import numpy as np

from ..errors import InputError

SPLITS = ('train', 'val')


def make_digits_folder(root: str, size: int = 32, val_fraction: float = 0.2,
                       seed: int = 0) -> Dict[str, int]:
    """Write both splits under ``root``.

    Args:
        root: Output directory (created; files of the same names are overwritten).
        size: Side of the saved images in pixels (at least 8).
        val_fraction: Share of each digit held out in ``val`` (between 0 and 1, exclusive).
        seed: Seed of the split; the same arguments give identical files.

    Returns:
        The number of images per split.

    Raises:
        InputError: a size below 8 or a fraction outside (0, 1).
    """
    if size < 8:
        raise InputError(f'size {size}: the scans are 8x8; give 8 or more')
    if not 0 < val_fraction < 1:
        raise InputError(f'val_fraction {val_fraction}: give a fraction between 0 and 1')
    from PIL import Image
    from sklearn.datasets import load_digits
    digits = load_digits()
    rng = np.random.default_rng(seed)
    counts = dict.fromkeys(SPLITS, 0)
    for label in range(10):
        indices = rng.permutation(np.flatnonzero(digits.target == label))
        held_out = int(round(len(indices) * val_fraction))
        for split, chosen in (('val', indices[:held_out]), ('train', indices[held_out:])):
            folder = osp.join(root, split, str(label))
            os.makedirs(folder, exist_ok=True)
            for i in sorted(chosen):
                grey = (digits.images[i] * (255 / 16)).round().astype(np.uint8)
                image = Image.fromarray(grey).resize((size, size), Image.BICUBIC)
                image.convert('RGB').save(osp.join(folder, f'{i:04d}.png'))
                counts[split] += 1
    return counts
