"""Real photographs that installed packages ship, as batches of 8-bit pixels at an input size:
what the exporters check and calibrate on without downloading anything.

- ``grace_hopper``: matplotlib's sample image (512x600 portrait);
- ``china`` and ``flower``: scikit-learn's sample images (640x427 scene and close-up).

Each photograph gives :data:`VIEWS` views (the whole picture, three crops and a mirrored crop),
every view resized to the input size.
"""
from typing import Callable, Dict, Sequence

import numpy as np
import torch
from PIL import Image


def _grace_hopper() -> Image.Image:
    from matplotlib import cbook
    with cbook.get_sample_data('grace_hopper.jpg') as f:
        return Image.open(f).convert('RGB')


def _sklearn_sample(name: str) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        from sklearn.datasets import load_sample_image
        return Image.fromarray(load_sample_image(name))
    return load


PHOTOS: Dict[str, Callable[[], Image.Image]] = {
    'grace_hopper': _grace_hopper,
    'china': _sklearn_sample('china.jpg'),
    'flower': _sklearn_sample('flower.jpg'),
}
VIEWS = 4


def views(photo: Image.Image) -> list:
    """The whole photograph, its top-left 3/4, its centre half, and its bottom-right 3/4
    mirrored."""
    pw, ph = photo.size
    return [photo, photo.crop((0, 0, pw * 3 // 4, ph * 3 // 4)),
            photo.crop((pw // 4, ph // 4, pw * 3 // 4, ph * 3 // 4)),
            photo.crop((pw // 4, ph // 4, pw, ph)).transpose(Image.FLIP_LEFT_RIGHT)]


def to_batch(images: Sequence[Image.Image], input_size: Sequence[int],
             channel_order: str = 'RGB') -> torch.Tensor:
    """PIL images resized (bilinear) to ``input_size`` (H, W), as an Nx3xHxW float batch of
    pixel values 0-255 in ``channel_order``."""
    h, w = input_size
    batch = np.stack([np.asarray(i.convert('RGB').resize((w, h), Image.BILINEAR))
                      for i in images])
    out = torch.from_numpy(batch).permute(0, 3, 1, 2).float()
    return out.flip(1) if channel_order == 'BGR' else out


def sample_images(input_size: Sequence[int], channel_order: str = 'RGB',
                  photos: Sequence[str] = ('grace_hopper', )) -> torch.Tensor:
    """:data:`VIEWS` views of each of ``photos`` (keys of :data:`PHOTOS`), in that order, as an
    Nx3xHxW batch of 8-bit pixel values in ``channel_order``.

    Args:
        input_size: ``(H, W)`` of every view.
        channel_order: 'RGB' or 'BGR'.
        photos: Which photographs.
    """
    return to_batch([v for name in photos for v in views(PHOTOS[name]())], input_size,
                    channel_order)
