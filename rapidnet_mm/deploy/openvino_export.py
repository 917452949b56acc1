"""OpenVINO IR export (``.xml`` graph + ``.bin`` weights) of the same export module as ONNX (mean
subtracted in the graph, 1/std folded into the first conv), checked on CPU against PyTorch.

The IR is converted from the file our ONNX exporter writes (one exporter for every file format
and runtime), kept in float32 (``save_model`` would otherwise compress the weights to FP16), and
compiled with ``INFERENCE_PRECISION_HINT=f32`` (OpenVINO's CPU plugin otherwise runs bfloat16 on
CPUs with AVX512-BF16 or AMX, which is not the exact model).
"""
import json
import os.path as osp
import tempfile
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn

from .export_module import (ExportedFileCheck, ExportError, check_exported_file,
                            prepare_file_export, random_image, reference_outputs)
from .normalization import InputNormalization
from .onnx_export import DEFAULT_OPSET, write_onnx

# The version measured and tested here (requirements/stack.txt pins the same).
OPENVINO_VERSION = '2026.4.1'
METADATA_KEY = 'rapidnet_mm'


def import_openvino():
    """``openvino``, or an ExportError that says how to install it."""
    try:
        import openvino
    except ImportError as err:
        raise ExportError(f'openvino is not installed ({err}); pip install '
                          f'openvino=={OPENVINO_VERSION} (or the deploy extra: pip install '
                          '-e .[deploy])') from None
    return openvino


def check_request() -> None:
    """Refuse an export before a model is built when openvino is missing."""
    import_openvino()


def compile_openvino(model, threads: Optional[int] = None):
    """``model`` (an IR/ONNX path or an ``openvino.Model``) compiled for the CPU in float32, for
    latency; ``threads`` sets its thread count (default: OpenVINO's own choice)."""
    ov = import_openvino()
    config = {'INFERENCE_PRECISION_HINT': 'f32', 'PERFORMANCE_HINT': 'LATENCY'}
    if threads:
        config['INFERENCE_NUM_THREADS'] = threads
    return ov.Core().compile_model(model, 'CPU', config)


def run_openvino(compiled, image: np.ndarray) -> List[np.ndarray]:
    """Outputs of a compiled model for one float32 input, in the model's output order."""
    result = compiled(image.astype(np.float32, copy=False))
    return [result[output] for output in compiled.outputs]


def read_metadata(xml: str) -> dict:
    """What the exporter stored in the IR's runtime info: task, outputs, input size and the
    normalisation built into the graph."""
    ov = import_openvino()
    model = ov.Core().read_model(xml)
    if not model.has_rt_info([METADATA_KEY]):
        raise ExportError(f'{xml} has no {METADATA_KEY} runtime info: not written by '
                          'tools/deployment/export.py --format openvino')
    return json.loads(model.get_rt_info([METADATA_KEY]).astype(str))


def export_openvino(model: nn.Module, task: str, input_size: Tuple[int, int],
                    norm: InputNormalization, out: str, dilated_as_dense: bool = False,
                    log: Callable[[str], None] = print,
                    rel_tol: float = 1e-4) -> ExportedFileCheck:
    """Check, reparameterise and export ``model`` to ``out`` (``NAME.xml``) and ``NAME.bin``
    beside it; compile the IR on CPU and compare it with PyTorch (the rule and tolerance of the
    ONNX export).

    The IR takes ``image``: float32 1x3xHxW pixel values 0-255 in the model's channel order, and
    outputs ``logits`` or ``feat_s4`` ... ``feat_s32``.

    Raises:
        ExportError: openvino missing, bad settings or model (before export), or OpenVINO's
            outputs differing from PyTorch's by more than ``rel_tol`` of the reference's largest
            magnitude.
    """
    ov = import_openvino()
    xml = out
    module, names, params = prepare_file_export(model, task, input_size, norm, dilated_as_dense,
                                                'OpenVINO IR', log)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = osp.join(tmp, 'model.onnx')
        write_onnx(module, torch.zeros(1, 3, *input_size), onnx_path, 'image', names,
                   DEFAULT_OPSET)
        ov_model = ov.convert_model(onnx_path)
    metadata = dict(task=task, outputs=names, input_size=list(input_size),
                    input=f'image: float32 1x3xHxW pixels 0-255, {norm.channel_order}',
                    mean=list(norm.mean), std=list(norm.std), dilated_as_dense=dilated_as_dense)
    ov_model.set_rt_info(json.dumps(metadata), [METADATA_KEY])
    ov.save_model(ov_model, xml, compress_to_fp16=False)
    image = random_image(input_size)
    ref = reference_outputs(model, task, image, norm)
    got = run_openvino(compile_openvino(xml), image.numpy())
    return check_exported_file(xml, 'OpenVINO (CPU, f32)', names, ref, got, params, log,
                               rel_tol)
