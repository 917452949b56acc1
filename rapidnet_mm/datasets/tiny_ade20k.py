"""Generate a tiny synthetic ADE20K-layout semantic segmentation dataset, deterministically.

Each image has a grey background (raw ADE label 4), a red, a green and a blue rectangle (labels
1-3), pixel noise, and a 2-px border labelled 0 (ADE's "other", ignored with reduce_zero_label).
Image sizes vary between --min-size and --max-size. Layout (what mmseg's ADE20KDataset reads)::

    ROOT/images/training/ADE_train_00000000.jpg       ROOT/annotations/training/....png
    ROOT/images/validation/ADE_valid_00000000.jpg     ROOT/annotations/validation/....png

Written by ``tools/misc/make_tiny_ade20k.py``.
"""
import os
import os.path as osp

import cv2
import numpy as np

from ..errors import InputError, OutputError

# raw ADE label -> BGR colour of its region; 0 is ADE's "other" (ignored with reduce_zero_label)
COLOURS = {1: (40, 40, 200), 2: (40, 200, 40), 3: (200, 40, 40), 4: (128, 128, 128)}
MIN_SIZE = 32  # rectangles are at least 12 px and at most half the image


def make_ade_layout(root: str, seed: int = 0, num_train: int = 6, num_val: int = 3,
                    min_size: int = 65, max_size: int = 128) -> None:
    """Write the images and label maps of both splits under ``root``.

    Args:
        root: Output directory (created; files of the same names are overwritten).
        seed: Random seed; the same arguments give identical files.
        num_train: Number of training images.
        num_val: Number of validation images.
        min_size: Smallest image side in pixels (inclusive).
        max_size: Largest image side in pixels (exclusive).

    Raises:
        InputError: a non-positive image count or sizes outside ``MIN_SIZE <= min < max``.
    """
    if num_train < 1 or num_val < 1:
        raise InputError(f'need at least one image per split, got num_train={num_train}, '
                         f'num_val={num_val}')
    if not MIN_SIZE <= min_size < max_size:
        raise InputError(f'need {MIN_SIZE} <= min_size < max_size, got {min_size} and '
                         f'{max_size}')
    rng = np.random.default_rng(seed)
    for split, count in (('training', num_train), ('validation', num_val)):
        for i in range(count):
            height, width = (int(v) for v in rng.integers(min_size, max_size, size=2))
            label = np.full((height, width), 4, np.uint8)
            for cls in (1, 2, 3):
                h, w = int(rng.integers(12, height // 2)), int(rng.integers(12, width // 2))
                y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
                label[y:y + h, x:x + w] = cls
            label[:2], label[-2:], label[:, :2], label[:, -2:] = 0, 0, 0, 0
            image = np.zeros((height, width, 3), np.uint8)
            for cls, colour in COLOURS.items():
                image[label == cls] = colour
            noise = rng.normal(0, 12, image.shape)
            image = np.clip(image + noise, 0, 255).astype(np.uint8)
            name = f'ADE_{split[:5]}_{i:08d}'
            for kind, array, ext in (('images', image, 'jpg'), ('annotations', label, 'png')):
                folder = osp.join(root, kind, split)
                os.makedirs(folder, exist_ok=True)
                path = osp.join(folder, f'{name}.{ext}')
                if not cv2.imwrite(path, array):
                    raise OutputError(f'could not write {path}')
