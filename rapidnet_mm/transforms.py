"""Data transforms the RapidNet recipes need and the libraries lack.

``AlignResize`` is the test-time resize of the authors' ADE20K evaluation (mmseg 0.x): a
keep-ratio resize to fit a scale such as (2048, 512), then a second resize that stretches each
side up to the next multiple of ``size_divisor``. mmseg 1.x ships no such transform; it is
registered in mmseg's ``TRANSFORMS`` (importing ``rapidnet_mm`` does that when mmseg is
installed).
"""
import math
from typing import Sequence, Tuple

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

INTERPOLATIONS = ('nearest', 'bilinear', 'bicubic', 'area', 'lanczos')


def aligned_size(width: int, height: int, scale: Tuple[int, int],
                 size_divisor: int) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """The two target sizes of :class:`AlignResize` for an image of ``width`` x ``height``.

    Args:
        width: Image width.
        height: Image height.
        scale: ``(long edge, short edge)`` bound of the keep-ratio resize, in either order.
        size_divisor: Each side of the final size is a multiple of it.

    Returns:
        ``((w1, h1), (w2, h2))``: the keep-ratio size (mmcv's rounding: the largest size that
        fits ``scale``, each side rounded half up) and that size with each side rounded *up* to a
        multiple of ``size_divisor``.
    """
    rescaled = mmcv.rescale_size((width, height), tuple(scale))
    aligned = tuple(int(math.ceil(side / size_divisor)) * size_divisor for side in rescaled)
    return rescaled, aligned


@TRANSFORMS.register_module()
class AlignResize(BaseTransform):
    """Keep-ratio resize to fit ``scale``, then resize to multiples of ``size_divisor``.

    The authors' mmseg 0.x test pipeline resized in two steps: ``mmcv.imrescale`` to fit the
    scale, then ``mmcv.imresize`` of that result to the size with each side rounded up to a
    multiple of 32 (so the aspect ratio changes slightly). This does the same, with the same
    interpolation per step, and records ``scale_factor`` as final size / original size.
    Segmentation maps (``seg_fields``, when annotations are loaded before this transform) go
    through the same two steps with nearest interpolation. mmseg 1.x's evaluation resizes the
    prediction back to ``ori_shape``, so ground truth is usually loaded after this transform and
    left at its original size, as in the original evaluation.

    Required keys: ``img`` (and any key listed in ``seg_fields``).
    Modified keys: ``img``, ``img_shape``, seg maps in ``seg_fields``.
    Added keys: ``scale``, ``scale_factor``, ``keep_ratio``.

    Args:
        scale: ``(w, h)`` bound of the keep-ratio resize; the long image side is at most
            ``max(scale)`` and the short side at most ``min(scale)``.
        size_divisor: Each output side is rounded up to a multiple of it.
        interpolation: Image interpolation of both steps (seg maps always use 'nearest').
        backend: mmcv resize backend, 'cv2' (as the original) or 'pillow'.
    """

    def __init__(self,
                 scale: Sequence[int] = (2048, 512),
                 size_divisor: int = 32,
                 interpolation: str = 'bilinear',
                 backend: str = 'cv2') -> None:
        if (not isinstance(scale, (tuple, list)) or len(scale) != 2
                or not all(isinstance(s, int) and s > 0 for s in scale)):
            raise ValueError(f'AlignResize scale must be two positive ints (w, h), e.g. '
                             f'(2048, 512); got {scale!r}')
        if not isinstance(size_divisor, int) or size_divisor < 1:
            raise ValueError(f'AlignResize size_divisor must be a positive int, got '
                             f'{size_divisor!r}')
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f'AlignResize interpolation {interpolation!r} is not one of '
                             f'{INTERPOLATIONS}')
        if backend not in ('cv2', 'pillow'):
            raise ValueError(f"AlignResize backend must be 'cv2' or 'pillow', got {backend!r}")
        self.scale = tuple(scale)
        self.size_divisor = size_divisor
        self.interpolation = interpolation
        self.backend = backend

    def _two_step(self, array: np.ndarray, rescaled: Tuple[int, int],
                  aligned: Tuple[int, int], interpolation: str) -> np.ndarray:
        array = mmcv.imresize(array, rescaled, interpolation=interpolation, backend=self.backend)
        return mmcv.imresize(array, aligned, interpolation=interpolation, backend=self.backend)

    def transform(self, results: dict) -> dict:
        """Resize ``results['img']`` and its seg maps in place; return ``results``."""
        if 'img' not in results:
            raise KeyError('AlignResize needs results["img"]: put it after LoadImageFromFile')
        img = results['img']
        height, width = img.shape[:2]
        rescaled, aligned = aligned_size(width, height, self.scale, self.size_divisor)
        results['img'] = self._two_step(img, rescaled, aligned, self.interpolation)
        results['img_shape'] = results['img'].shape[:2]
        results['scale'] = aligned
        results['scale_factor'] = (aligned[0] / width, aligned[1] / height)
        results['keep_ratio'] = True
        for key in results.get('seg_fields', []):
            if results[key].shape[:2] != (height, width):
                raise ValueError(f'AlignResize: {key} has shape {results[key].shape[:2]} but the '
                                 f'image has {(height, width)}; they must match')
            results[key] = self._two_step(results[key], rescaled, aligned, 'nearest')
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(scale={self.scale}, '
                f'size_divisor={self.size_divisor}, interpolation={self.interpolation!r}, '
                f'backend={self.backend!r})')
