"""Compressed Core ML packages (8-bit weights, 6- and 4-bit palettes) and their accuracy,
measured without macOS.

Compression uses coremltools' post-training weight compression (``coremltools.optimize.coreml``):
``linear_quantize_weights`` (symmetric int8 per output channel) and ``palettize_weights``
(per-tensor k-means look-up tables of 2**nbits FP16 entries). Weight tensors of at most 2048
values (biases, the first conv, small depthwise kernels) stay FP16, coremltools' default.

Core ML predicts only on macOS, so the accuracy is measured in PyTorch: the weights stored in the
saved package (the ``const`` values, and the ``constexpr_*`` ops dequantised by coremltools' own
``value_inference``) are loaded into a copy of the export module, which then runs in the package's
compute precision on a batch of photographs; the PSNR is taken against the FP32 PyTorch model.
Activation quantisation (which would need calibration images and iOS 17) is not offered.
"""
import copy
import math
import os.path as osp
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from .comparison import as_list, psnr, reference_outputs
from .export_module import ExportError, ExportModule
from .normalization import InputNormalization


@dataclass(frozen=True)
class Compression:
    """One ``--compress`` mode.

    Attributes:
        name: The option value.
        kind: 'linear' (coremltools' linear_quantize_weights) or 'palette' (palettize_weights).
        nbits: Bits per compressed weight.
        min_psnr: Default PSNR floor in dB (docs/deployment.md 2.7 gives the measurement).
    """
    name: str
    kind: str
    nbits: int
    min_psnr: float

    @property
    def bytes_per_weight(self) -> float:
        return self.nbits / 8


COMPRESSIONS: Dict[str, Compression] = {c.name: c for c in (
    Compression('int8', 'linear', 8, 35.0),
    Compression('palette6', 'palette', 6, 25.0),
    Compression('palette4', 'palette', 4, 15.0),
)}
# constexpr_affine_dequantize and constexpr_lut_to_dense first exist in iOS16's MIL opset.
COMPRESSION_MIN_TARGET = 'iOS16'
COMPRESSION_PRECISION = 'fp16'


def check_compression(compress: Optional[str], precision: str, min_target: str,
                      min_targets: Sequence[str]) -> None:
    """Refuse a compression mode that cannot work with the other settings.

    Args:
        compress: A key of COMPRESSIONS, or None.
        precision: 'fp16' or 'fp32'.
        min_target: The minimum deployment target, e.g. 'iOS16'.
        min_targets: The known targets, oldest first.
    """
    if compress is None:
        return
    if compress not in COMPRESSIONS:
        raise ExportError(f'unknown --compress {compress!r}; choose one of {tuple(COMPRESSIONS)}')
    if min_targets.index(min_target) < min_targets.index(COMPRESSION_MIN_TARGET):
        raise ExportError(f'--compress {compress} needs --min-target {COMPRESSION_MIN_TARGET} or '
                          f'newer: {min_target} has no ops for compressed weights '
                          '(constexpr_affine_dequantize / constexpr_lut_to_dense)')
    if precision != COMPRESSION_PRECISION:
        raise ExportError(f'--compress {compress} with --precision {precision}: this exporter '
                          'compresses FP16 packages only (the Neural Engine computes in FP16; an '
                          'FP32 package runs on the CPU or GPU, where compressed weights are not '
                          'what we measured); use --precision fp16 (the default)')


def compress_mlmodel(mlmodel, compress: str):
    """The ML program with its weights compressed by coremltools (a new model; not saved)."""
    import coremltools.optimize.coreml as cto
    mode = COMPRESSIONS[compress]
    if mode.kind == 'linear':
        op_config = cto.OpLinearQuantizerConfig(mode='linear_symmetric', dtype='int8',
                                                granularity='per_channel')
        return cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(op_config))
    op_config = cto.OpPalettizerConfig(mode='kmeans', nbits=mode.nbits,
                                       granularity='per_tensor')
    return cto.palettize_weights(mlmodel, cto.OptimizationConfig(op_config))


def _load_program(path: str):
    """The saved package's MIL program (coremltools' proto loader; no macOS needed)."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load as load_mil
    spec = ct.utils.load_spec(path)
    weights_dir = osp.join(path, 'Data', 'com.apple.CoreML', 'weights')
    return load_mil(spec, spec.specificationVersion, file_weights_dir=weights_dir)


def _value(var) -> np.ndarray:
    """A weight's stored value: a const, or a constexpr op dequantised by coremltools."""
    op = var.op
    if op.op_type == 'const':
        return np.asarray(var.val)
    if op.op_type.startswith('constexpr_'):
        return np.asarray(op.materialized_val_inference())
    raise ExportError(f'weight {var.name!r} comes from a {op.op_type} op, neither a const nor a '
                      'constexpr op; cannot read it back')


# What coremltools appends to a torch parameter's name in the MIL program.
_SUFFIXES = ('_palettized', '_quantized', '_to_fp16', '_to_fp32')


def _torch_name(mil_name: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for suffix in _SUFFIXES:
            if mil_name.endswith(suffix):
                mil_name, stripped = mil_name[:-len(suffix)], True
    return mil_name


def package_weights(path: str, module: nn.Module) -> Dict[str, torch.Tensor]:
    """The package's weights as a state dict of ``module`` (the export module it came from).

    Every ``conv`` and ``linear`` op of the program is matched to its PyTorch layer by the name
    coremltools gave its weight (the layer's name with dots as underscores); the op's bias is that
    layer's bias, whatever name de-duplication left it. The match must be one-to-one and cover
    every parameter of ``module`` with equal shapes.

    Raises:
        ExportError: an op that matches no layer, a layer matched twice or not at all, or a
            shape that differs.
    """
    layers = {name.replace('.', '_') + '_weight': (name, m) for name, m in module.named_modules()
              if isinstance(m, (nn.Conv2d, nn.Linear))}
    program = _load_program(path)
    state: Dict[str, torch.Tensor] = {}
    for op in program.functions['main'].operations:
        if op.op_type not in ('conv', 'linear'):
            continue
        weight = op.inputs['weight']
        key = _torch_name(weight.name)
        if key not in layers:
            raise ExportError(f'{path}: {op.op_type} weight {weight.name!r} matches no layer of '
                              'the export module; cannot evaluate the package')
        name, layer = layers[key]
        if f'{name}.weight' in state:
            raise ExportError(f'{path}: layer {name} is used by two {op.op_type} ops')
        pairs = [('weight', weight)]
        if layer.bias is not None:
            if op.inputs.get('bias') is None:
                raise ExportError(f'{path}: {op.op_type} {weight.name!r} has no bias but {name} '
                                  'has one')
            pairs.append(('bias', op.inputs['bias']))
        for attr, var in pairs:
            value = torch.from_numpy(_value(var).astype(np.float32))
            expected = getattr(layer, attr).shape
            if value.shape != expected:
                raise ExportError(f'{path}: {var.name!r} has shape {tuple(value.shape)}, '
                                  f'{name}.{attr} {tuple(expected)}')
            state[f'{name}.{attr}'] = value
    missing = [n for n, _ in module.named_parameters() if n not in state]
    if missing:
        raise ExportError(f'{path}: no stored weight for {len(missing)} parameters of the export '
                          f'module ({", ".join(missing[:3])} ...); cannot evaluate the package')
    return state


def package_runner(path: str, export_module: ExportModule, norm: InputNormalization,
                   half: bool) -> Callable[[torch.Tensor], List[torch.Tensor]]:
    """The package's weights, run in PyTorch: a function of Nx3xHxW pixel values returning the
    outputs.

    Args:
        path: The saved .mlpackage.
        export_module: The module the package was converted from (mean left to the input).
        norm: The model's input normalisation (its mean is the package's image bias).
        half: Run in FP16, as an FP16 package computes.
    """
    module = copy.deepcopy(export_module)
    module.load_state_dict(package_weights(path, module), strict=False)
    if half:
        module.half()

    def run(images: torch.Tensor) -> List[torch.Tensor]:
        x = images - images.new_tensor(norm.mean).reshape(1, 3, 1, 1)
        with torch.no_grad():
            if half:
                return [o.float() for o in as_list(module(x.half()))]
            return as_list(module(x))
    return run


def package_psnr(path: str, export_module: ExportModule, model: nn.Module, task: str,
                 norm: InputNormalization, images: torch.Tensor, half: bool) -> List[float]:
    """PSNR (dB) per output of the package's weights, run in PyTorch (:func:`package_runner`),
    against the FP32 model on ``images`` (Nx3xHxW pixel values)."""
    reference = reference_outputs(model, task, images, norm)
    outputs = package_runner(path, export_module, norm, half)(images)
    return [psnr(r, o) for r, o in zip(reference, outputs)]


def format_psnr(label: str, names: Sequence[str], values: Sequence[float], count: int) -> str:
    """One report line, e.g. ``int8 package vs FP32 PyTorch on 4 photos: logits 41.2 dB``."""
    shown = ', '.join(f'{n} {v:.1f} dB' if math.isfinite(v) or v > 0 else f'{n} overflows'
                      for n, v in zip(names, values))
    return f'  {label} package vs FP32 PyTorch on {count} photos: {shown}'


def min_psnr_for(compress: str, min_psnr: Optional[float]) -> Tuple[float, str]:
    """The PSNR floor and where it came from ('default' or '--min-psnr')."""
    if min_psnr is not None:
        return min_psnr, '--min-psnr'
    return COMPRESSIONS[compress].min_psnr, f'default for {compress}'
