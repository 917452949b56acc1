"""Generate a tiny synthetic COCO instance-segmentation dataset, deterministically.

Each image is a textured background (a muted base colour, oriented stripes and noise) with a few
non-overlapping, brightly coloured shapes; every shape is one instance with a polygon mask. The
category is the shape (colours are random, so a model has to learn the outline). Layout::

    ROOT/train/000000.png ...      ROOT/annotations/instances_train.json
    ROOT/val/000000.png ...        ROOT/annotations/instances_val.json

The same arguments always give byte-identical files (``tools/misc/make_tiny_coco.py``).
"""
import json
import math
import os
import os.path as osp
from typing import Dict, List, Tuple

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from ..errors import InputError, OutputError

CATEGORIES = ('circle', 'triangle', 'square')
SPLITS = ('train', 'val')
MIN_IMAGE_SIZE = 64
MAX_TRIES = 60  # placement attempts per shape before giving up on that shape


def annotation_file(root: str, split: str) -> str:
    """Path of the COCO annotation file of ``split`` under ``root``."""
    return osp.join(root, 'annotations', f'instances_{split}.json')


def shape_polygon(category: str, cx: float, cy: float, radius: float,
                  angle: float) -> np.ndarray:
    """Vertices (N x 2, x/y) of a shape inscribed in the circle (cx, cy, radius)."""
    sides = {'circle': 32, 'triangle': 3, 'square': 4}[category]
    theta = angle + np.arange(sides) * 2 * math.pi / sides
    return np.stack([cx + radius * np.cos(theta), cy + radius * np.sin(theta)], axis=1)


def hsv_to_bgr(h: float, s: float, v: float) -> np.ndarray:
    """One BGR colour (float, 0-255) from hue in [0, 1) and saturation/value in [0, 1]."""
    hsv = np.array([[[h * 180, s * 255, v * 255]]], dtype=np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def textured_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A muted base colour with two oriented stripe patterns and pixel noise (float BGR)."""
    base = hsv_to_bgr(rng.random(), rng.uniform(0, 0.25), rng.uniform(0.3, 0.6))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    image = np.broadcast_to(base, (size, size, 3)).copy()
    for _ in range(2):
        direction = rng.uniform(0, math.pi)
        period = rng.uniform(6, 24)
        phase = (xx * math.cos(direction) + yy * math.sin(direction)) * 2 * math.pi / period
        image += (rng.uniform(10, 25) * np.sin(phase))[..., None]
    image += rng.normal(0, 8, image.shape)
    return image


def place_shapes(rng: np.random.Generator, size: int,
                 count: int) -> List[Tuple[str, np.ndarray]]:
    """Up to ``count`` (category, polygon) pairs whose boxes do not touch each other."""
    placed: List[Tuple[str, np.ndarray]] = []
    boxes: List[Tuple[float, float, float, float]] = []
    for _ in range(count):
        for _ in range(MAX_TRIES):
            category = CATEGORIES[rng.integers(len(CATEGORIES))]
            radius = rng.uniform(0.1, 0.22) * size
            cx, cy = rng.uniform(radius + 2, size - radius - 2, size=2)
            polygon = shape_polygon(category, cx, cy, radius, rng.uniform(0, 2 * math.pi))
            x0, y0 = polygon.min(axis=0) - 3
            x1, y1 = polygon.max(axis=0) + 3
            if all(x1 < bx0 or x0 > bx1 or y1 < by0 or y0 > by1
                   for bx0, by0, bx1, by1 in boxes):
                placed.append((category, polygon))
                boxes.append((x0, y0, x1, y1))
                break
    return placed


def make_image(rng: np.random.Generator, size: int) -> Tuple[np.ndarray, List[dict]]:
    """One image (uint8 BGR) and its annotations (without ids)."""
    image = textured_background(rng, size)
    annotations = []
    for category, polygon in place_shapes(rng, size, int(rng.integers(1, 5))):
        segmentation = [polygon.reshape(-1).round(2).tolist()]
        # Paint exactly the pixels the evaluator decodes from the polygon.
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, size, size))
        mask = mask_utils.decode(rle).astype(bool)
        colour = hsv_to_bgr(rng.random(), rng.uniform(0.7, 1.0), rng.uniform(0.75, 1.0))
        shading = rng.normal(0, 6, (int(mask.sum()), 3))
        image[mask] = colour + shading
        x0, y0 = polygon.min(axis=0)
        x1, y1 = polygon.max(axis=0)
        annotations.append(dict(
            category_id=CATEGORIES.index(category) + 1,
            segmentation=segmentation,
            area=float(mask_utils.area(rle)),
            bbox=[round(float(x0), 2), round(float(y0), 2), round(float(x1 - x0), 2),
                  round(float(y1 - y0), 2)],
            iscrowd=0))
    return np.clip(image, 0, 255).round().astype(np.uint8), annotations


def make_split(root: str, split: str, num_images: int, image_size: int, seed: int) -> Dict:
    """Write the images and the COCO annotation file of one split; return the COCO dict."""
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    os.makedirs(osp.join(root, split), exist_ok=True)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    coco = dict(images=[], annotations=[],
                categories=[dict(id=i + 1, name=name, supercategory='shape')
                            for i, name in enumerate(CATEGORIES)])
    for image_id in range(1, num_images + 1):
        image, annotations = make_image(rng, image_size)
        file_name = f'{image_id - 1:06d}.png'
        if not cv2.imwrite(osp.join(root, split, file_name), image):
            raise OutputError(f'could not write {osp.join(root, split, file_name)}')
        coco['images'].append(dict(id=image_id, file_name=file_name, width=image_size,
                                   height=image_size))
        for ann in annotations:
            coco['annotations'].append(dict(id=len(coco['annotations']) + 1,
                                            image_id=image_id, **ann))
    with open(annotation_file(root, split), 'w') as f:
        json.dump(coco, f)
    return coco


def make_dataset(root: str, num_train: int = 96, num_val: int = 24, image_size: int = 128,
                 seed: int = 0, verbose: bool = True) -> Dict[str, Dict]:
    """Generate both splits under ``root``.

    Args:
        root: Output directory (created if needed; existing files of the same names are
            overwritten).
        num_train: Number of training images.
        num_val: Number of validation images.
        image_size: Side of the square images in pixels (at least 64).
        seed: Random seed; the same arguments give identical files.
        verbose: Print one line per split.

    Returns:
        The COCO dicts by split name.

    Raises:
        InputError: a non-positive image count or an image size below 64.
    """
    if num_train < 1 or num_val < 1:
        raise InputError(f'need at least one image per split, got num_train={num_train}, '
                         f'num_val={num_val}')
    if image_size < MIN_IMAGE_SIZE:
        raise InputError(f'image_size must be at least {MIN_IMAGE_SIZE} pixels, got '
                         f'{image_size}')
    result = {}
    for split, count in zip(SPLITS, (num_train, num_val)):
        result[split] = make_split(root, split, count, image_size, seed)
        if verbose:
            print(f'{split}: {count} images, {len(result[split]["annotations"])} instances '
                  f'-> {annotation_file(root, split)}', flush=True)
    return result
