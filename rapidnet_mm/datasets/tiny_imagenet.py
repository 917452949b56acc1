"""A tiny synthetic ImageNet-layout classification dataset and a tiny stand-in teacher for
distillation runs, for short CPU or GPU runs of the classification configs.

Each class is one flat colour with pixel noise, so a model learns it in a few iterations.
Layout (what mmpretrain's ``ImageNet`` dataset reads)::

    ROOT/{split}/n00000000/{split}_n00000000_0.JPEG ...     ROOT/meta/{split}.txt
"""
import os
import os.path as osp
from typing import Dict

import numpy as np
import torch

NUM_CLASSES = 4
TINY_TEACHER = 'test_resnet'  # a timm model of ~0.5M parameters standing in for regnety_160
# A distinct colour per class, so that the task is learnable and predictions are not constant.
COLOURS = [(220, 40, 40), (40, 200, 40), (40, 60, 220), (230, 220, 50)]


def make_imagenet(root: str, per_class: Dict[str, int], size: int = 64, seed: int = 0) -> None:
    """Write an ImageNet-layout dataset: ``{split}/{wnid}/*.JPEG`` plus ``meta/{split}.txt``.

    Args:
        root: Output directory (created; files of the same names are overwritten).
        per_class: Images per class, by split name (e.g. ``{'train': 8, 'val': 2}``).
        size: Side of the square images in pixels.
        seed: Random seed; the same arguments give the same images.
    """
    from PIL import Image
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'meta'), exist_ok=True)
    for split, count in per_class.items():
        lines = []
        for label, colour in enumerate(COLOURS[:NUM_CLASSES]):
            wnid = f'n{label:08d}'
            os.makedirs(osp.join(root, split, wnid), exist_ok=True)
            for i in range(count):
                noise = rng.integers(-30, 30, (size, size, 3))
                pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
                name = f'{wnid}/{split}_{wnid}_{i}.JPEG'
                Image.fromarray(pixels).save(osp.join(root, split, name), format='JPEG')
                lines.append(f'{name} {label}')
        with open(osp.join(root, 'meta', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')


def make_teacher_checkpoint(path: str, arch: str = TINY_TEACHER, seed: int = 0) -> torch.nn.Module:
    """Save a randomly initialised timm model of NUM_CLASSES classes as DeiT's teacher file does
    (``{'model': state_dict}``) and return it.

    Args:
        path: The file to write.
        arch: A timm model name.
        seed: Seed of the random initialisation.
    """
    import timm
    torch.manual_seed(seed)
    teacher = timm.create_model(arch, pretrained=False, num_classes=NUM_CLASSES)
    torch.save({'model': teacher.state_dict()}, path)
    return teacher


def scale_sizes(node, sizes: Dict[int, int]) -> None:
    """Replace crop and resize sizes in a config's pipeline in place (e.g. ``{224: 64}``),
    wherever they occur as ``scale`` or ``crop_size``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ('scale', 'crop_size') and value in sizes:
                node[key] = sizes[value]
            else:
                scale_sizes(value, sizes)
    elif isinstance(node, list):
        for item in node:
            scale_sizes(item, sizes)
