"""ONNX export of the same export module as Core ML (mean subtracted in the graph, 1/std folded
into the first conv), checked with onnxruntime against the PyTorch model."""
from dataclasses import dataclass
from typing import Callable, List, Tuple

import numpy as np
import torch
import torch.nn as nn

from .export_module import (ExportError, describe, output_names, prepare_export, random_image,
                            reference_outputs)
from .model_io import InputNormalization

DEFAULT_OPSET = 17


@dataclass
class OnnxExport:
    """The written file and how far onnxruntime's outputs are from the PyTorch model's."""
    path: str
    names: List[str]
    max_abs: List[float]
    rel: List[float]
    params: int

    def format(self) -> str:
        return '\n'.join(f'  {n}: onnxruntime vs PyTorch max |diff| {a:.3g} ({r:.2g} of max '
                         '|ref|)' for n, a, r in zip(self.names, self.max_abs, self.rel))


def run_onnxruntime(path: str, image: np.ndarray) -> List[np.ndarray]:
    """Outputs of the ONNX model at ``path`` for ``image`` (float32 NCHW pixels), on CPU."""
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    return session.run(None, {'image': image.astype(np.float32)})


def export_onnx(model: nn.Module, task: str, input_size: Tuple[int, int],
                norm: InputNormalization, out: str, dilated_as_dense: bool = False,
                opset: int = DEFAULT_OPSET, log: Callable[[str], None] = print,
                rel_tol: float = 1e-4) -> OnnxExport:
    """Check, reparameterise and export ``model``; compare onnxruntime with PyTorch.

    The ONNX model takes ``image``: float32 1x3xHxW pixel values 0-255 in the model's channel
    order, and outputs ``logits`` or ``feat_s4`` ... ``feat_s32``.

    Raises:
        ExportError: bad settings or model (before export), or onnxruntime's outputs differing
            from PyTorch's by more than ``rel_tol`` of the reference's largest magnitude.
    """
    if not out.endswith('.onnx'):
        raise ExportError(f'--out {out!r}: name the ONNX file *.onnx')
    module = prepare_export(model, task, input_size, norm, dilated_as_dense, mean_in_graph=True)
    names = output_names(model, task)
    sizes = describe(module)
    log(f'export module: {sizes["params"]:,} parameters, {sizes["dilated_convs"]} dilated convs; '
        f'exporting at {input_size[0]}x{input_size[1]} (opset {opset})')
    with torch.no_grad():
        torch.onnx.export(module, (torch.zeros(1, 3, *input_size), ), out,
                          input_names=['image'], output_names=names, opset_version=opset,
                          dynamo=False)
    image = random_image(input_size)
    ref = reference_outputs(model, task, image, norm)
    got = run_onnxruntime(out, image.numpy())
    max_abs = [float(np.abs(r.numpy() - g).max()) for r, g in zip(ref, got)]
    rel = [a / max(float(r.abs().max()), 1e-12) for a, r in zip(max_abs, ref)]
    result = OnnxExport(out, names, max_abs, rel, sizes['params'])
    log(f'saved {out}\n' + result.format())
    if any(r > rel_tol for r in rel):
        raise ExportError(f'onnxruntime does not reproduce the PyTorch model (relative '
                          f'difference above {rel_tol}); see above')
    return result
