"""The PyTorch model's own outputs for an exported file to be compared with (the reference), and
the comparisons: of a traced module in FP32 and FP16 (:func:`check_numerics`), and of a written
file's outputs, with class maps for segmentors (:func:`check_exported_file`).
"""
import copy
import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import torch
import torch.nn as nn

from .export_module import SEG_OUTPUT, ExportError, ExportModule, timm_network
from .normalization import InputNormalization


def mmseg_logits(model: nn.Module, image: torch.Tensor, norm: InputNormalization) -> torch.Tensor:
    """mmseg's own inference (``mmseg.apis.inference_model``) of one image given at the export
    size: the (1, C, H, W) logits of ``EncoderDecoder.predict``.

    ``image`` (1x3xHxW pixels in the network's channel order) goes in as the BGR array a
    loaded image is; the test pipeline is just loading and packing, since the image already has
    the exported size.
    """
    import numpy as np
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmseg.apis import inference_model
    pixels = image[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    if norm.channel_order == 'RGB':
        pixels = pixels[..., ::-1]
    saved = getattr(model, 'cfg', None)
    model.cfg = Config(dict(test_pipeline=[dict(type='LoadImageFromNDArray'),
                                           dict(type='PackSegInputs')]))
    try:
        with DefaultScope.overwrite_default_scope('mmseg'):
            sample = inference_model(model, np.ascontiguousarray(pixels))
    finally:
        if saved is None:
            del model.cfg
        else:
            model.cfg = saved
    return sample.seg_logits.data[None].float()


def check_image(task: str, input_size: Sequence[int], norm: InputNormalization,
                seed: int = 0) -> torch.Tensor:
    """The image a file is checked on: a photograph for segmentors (whose class maps are
    compared), random pixels (:func:`random_image` with ``seed``) otherwise."""
    if task == 'segmentor':
        from .photos import sample_images
        return sample_images(input_size, norm.channel_order, ('china', ))[:1]
    return random_image(input_size, seed)


def reference_outputs(model: nn.Module, task: str, image: torch.Tensor,
                      norm: InputNormalization) -> List[torch.Tensor]:
    """What the PyTorch model itself gives for ``image`` (pixels), normalised as in training;
    for 'segmentor', mmseg's own inference of each image (:func:`mmseg_logits`)."""
    if task == 'segmentor':
        return [torch.cat([mmseg_logits(model, image[i:i + 1], norm)
                           for i in range(len(image))])]
    with torch.no_grad():
        x = norm.apply(image)
        if task == 'classifier' and timm_network(model, task) is not None:
            return [model(x, mode='tensor')]
        if task == 'classifier':
            return [model.head(model.extract_feat(x))]
        return list(model.backbone(x))


def as_list(outputs) -> List[torch.Tensor]:
    return list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]


def psnr(reference: torch.Tensor, test: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB, with the reference's largest magnitude as the peak;
    -inf when ``test`` has non-finite values (an FP16 overflow)."""
    if not torch.isfinite(test).all():
        return -math.inf
    reference, test = reference.double(), test.double()
    mse = (reference - test).pow(2).mean().item()
    peak = reference.abs().max().item()
    return math.inf if mse == 0 else 10 * math.log10(peak ** 2 / mse)


@dataclass
class Numerics:
    """Per output: the FP32 max abs difference, its size relative to the reference's largest
    magnitude, and the PSNR of an FP16 run."""
    names: List[str]
    max_abs: List[float]
    rel: List[float]
    fp16_psnr: List[float]

    def ok(self, rel_tol: float = 1e-4) -> bool:
        return all(r <= rel_tol for r in self.rel)

    def format(self) -> str:
        def fp16(p: float) -> str:
            return (f'fp16 PSNR {p:.1f} dB' if math.isfinite(p) or p > 0 else
                    'fp16 overflows (values beyond +-65504: untrained weights?)')
        return '\n'.join(f'  {n}: fp32 max |diff| {a:.3g} ({r:.2g} of max |ref|), {fp16(p)}'
                         for n, a, r, p in
                         zip(self.names, self.max_abs, self.rel, self.fp16_psnr))


def random_image(input_size: Sequence[int], seed: int = 0) -> torch.Tensor:
    """A 1x3xHxW tensor of integer pixel values 0-255."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (1, 3, *input_size), generator=g).float()


def check_numerics(model: nn.Module, task: str, module: nn.Module, export_module: ExportModule,
                   norm: InputNormalization, names: List[str], input_size: Sequence[int],
                   seed: int = 0) -> Numerics:
    """Compare ``module`` (the traced module, or the export module) with the PyTorch model.

    ``module`` gets pixels minus the mean when ``export_module`` leaves the mean to the input
    pipeline. The FP16 run is ``export_module`` in half precision (a proxy for the Neural
    Engine's FP16 arithmetic).
    """
    image = check_image(task, input_size, norm, seed)
    ref = reference_outputs(model, task, image, norm)
    x = image if export_module.subtract_mean else image - image.new_tensor(
        norm.mean).reshape(1, 3, 1, 1)
    with torch.no_grad():
        out = as_list(module(x))
        half = copy.deepcopy(export_module).half()
        out16 = [o.float() for o in as_list(half(x.half()))]
    max_abs = [(r - o).abs().max().item() for r, o in zip(ref, out)]
    rel = [a / max(r.abs().max().item(), 1e-12) for a, r in zip(max_abs, ref)]
    return Numerics(names, max_abs, rel, [psnr(r, o) for r, o in zip(ref, out16)])


@dataclass
class ExportedFileCheck:
    """A written export file and how far its outputs, run by ``runner``, are from the PyTorch
    model's, per output."""
    path: str
    runner: str
    names: List[str]
    max_abs: List[float]
    rel: List[float]
    params: int
    class_maps: Optional['ClassMapCheck'] = None

    def format(self) -> str:
        lines = [f'  {n}: {self.runner} vs PyTorch max |diff| {a:.3g} ({r:.2g} of max |ref|)'
                 for n, a, r in zip(self.names, self.max_abs, self.rel)]
        return '\n'.join(lines + ([self.class_maps.format()] if self.class_maps else []))


@dataclass
class ClassMapCheck:
    """Per-pixel classes (argmax of segmentation logits) of a file against the reference:
    pixels, ties (the reference's two best classes closer than twice the largest logit
    difference, so either may win) and differing pixels outside the ties."""
    pixels: int
    ties: int
    differing: int

    def format(self) -> str:
        return (f'  class maps: {self.pixels - self.differing} of {self.pixels} pixels equal; '
                f'{self.ties} ties; {self.differing} differ outside ties')


def compare_class_maps(reference: torch.Tensor, outputs: torch.Tensor,
                       max_abs: float) -> ClassMapCheck:
    """Compare the class maps of (N, C, H, W) logits, ties excepted (see ClassMapCheck)."""
    top2 = reference.topk(2, dim=1).values
    ties = (top2[:, 0] - top2[:, 1]) <= 2 * max_abs
    differ = reference.argmax(1) != outputs.argmax(1)
    return ClassMapCheck(differ.numel(), int(ties.sum()), int((differ & ~ties).sum()))


def check_exported_file(path: str, runner: str, names: List[str], reference: Sequence,
                        outputs: Sequence, params: int, log: Callable[[str], None],
                        rel_tol: float) -> ExportedFileCheck:
    """Compare an exported file's outputs with the reference, log the result, and raise
    ExportError when any differs by more than ``rel_tol`` of the reference's largest magnitude."""
    max_abs = [float(abs(torch.as_tensor(r) - torch.as_tensor(o)).max())
               for r, o in zip(reference, outputs)]
    rel = [a / max(float(torch.as_tensor(r).abs().max()), 1e-12)
           for a, r in zip(max_abs, reference)]
    result = ExportedFileCheck(path, runner, names, max_abs, rel, params)
    if names == [SEG_OUTPUT]:
        result.class_maps = compare_class_maps(torch.as_tensor(reference[0]),
                                               torch.as_tensor(outputs[0]), max_abs[0])
    log(result.format())
    if any(r > rel_tol for r in rel):
        raise ExportError(f'{runner} does not reproduce the PyTorch model (relative difference '
                          f'above {rel_tol}); see above')
    if result.class_maps and result.class_maps.differing:
        raise ExportError(f'{runner}: {result.class_maps.differing} pixels change class beyond '
                          'ties; see above')
    return result
