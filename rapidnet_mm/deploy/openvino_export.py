"""OpenVINO IR export (``.xml`` graph + ``.bin`` weights) of the same export module as ONNX (mean
subtracted in the graph, 1/std folded into the first conv), checked on CPU against PyTorch.

The IR is converted from the file our ONNX exporter writes (one exporter for every file format
and runtime), kept in float32 (``save_model`` would otherwise compress the weights to FP16), and
compiled with ``INFERENCE_PRECISION_HINT=f32`` (OpenVINO's CPU plugin otherwise runs bfloat16 on
CPUs with AVX512-BF16 or AMX, which is not the exact model).

``--quantize int8``: NNCF's post-training quantization of the IR (``nncf.quantize``, preset
``PERFORMANCE``: symmetric int8 weights per output channel and activations per tensor),
calibrated on the calibration images (see ``int8``).
"""
import json
import os.path as osp
import tempfile
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from . import int8
from .export_module import (ExportedFileCheck, ExportError, check_exported_file,
                            check_image, prepare_file_export, reference_outputs)
from .int8 import Int8Report
from .normalization import InputNormalization
from .onnx_export import DEFAULT_OPSET, write_onnx

# The versions measured and tested here (requirements/stack.txt pins the same).
OPENVINO_VERSION = '2026.4.1'
NNCF_VERSION = '3.4.0'
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


def import_nncf():
    """``nncf``, or an ExportError that says how to install it."""
    try:
        import nncf
    except ImportError as err:
        raise ExportError(f'--quantize int8 with --format openvino needs nncf ({err}); pip '
                          f'install nncf=={NNCF_VERSION} (or the deploy extra: pip install -e '
                          '.[deploy])') from None
    return nncf


def check_request(quantize: Optional[str] = None, calib: Optional[str] = None,
                  min_psnr: Optional[float] = None,
                  min_pixel_agreement: Optional[float] = None,
                  min_top1_agreement: Optional[float] = None) -> None:
    """Refuse an export before a model is built: openvino (or, for int8, nncf) missing, or int8
    options that cannot work."""
    import_openvino()
    int8.check_request(quantize, calib, min_psnr, min_pixel_agreement,
                       min_top1_agreement)
    if quantize:
        import_nncf()


def quantize_openvino(ov_model, calibration: Sequence[np.ndarray]):
    """The NNCF int8 form of an ``openvino.Model``, calibrated on every array of
    ``calibration`` (float32, shaped like the input)."""
    nncf = import_nncf()
    dataset = nncf.Dataset([np.ascontiguousarray(c, np.float32) for c in calibration])
    return nncf.quantize(ov_model, dataset, preset=nncf.QuantizationPreset.PERFORMANCE,
                         subset_size=len(calibration))


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


@dataclass
class OpenVINOExport(ExportedFileCheck):
    """An OpenVINO export's check against PyTorch (the fp32 IR's), and with ``--quantize`` the
    int8 report."""
    int8: Optional[Int8Report] = None


def export_openvino(model: nn.Module, task: str, input_size: Tuple[int, int],
                    norm: InputNormalization, out: str, dilated_as_dense: bool = False,
                    log: Callable[[str], None] = print, quantize: Optional[str] = None,
                    calib: Optional[str] = None, min_psnr: Optional[float] = None,
                    min_pixel_agreement: Optional[float] = None,
                    min_top1_agreement: Optional[float] = None,
                    rel_tol: float = 1e-4) -> OpenVINOExport:
    """Check, reparameterise and export ``model`` to ``out`` (``NAME.xml``) and ``NAME.bin``
    beside it; compile the IR on CPU and compare it with PyTorch (the rule and tolerance of the
    ONNX export). With ``quantize='int8'`` the IR written is NNCF's int8 one, measured against
    fp32.

    The IR takes ``image``: float32 1x3xHxW pixel values 0-255 in the model's channel order, and
    outputs ``logits``, ``seg_logits`` or ``feat_s4`` ... ``feat_s32``.

    Raises:
        ExportError: openvino (or nncf) missing, bad settings or model (before export); the fp32
            IR's outputs differing from PyTorch's by more than ``rel_tol`` of the reference's
            largest magnitude; an int8 IR below the agreement floor.
    """
    check_request(quantize, calib, min_psnr, min_pixel_agreement,
                  min_top1_agreement)
    ov = import_openvino()
    module, names, params = prepare_file_export(model, task, input_size, norm, dilated_as_dense,
                                                'OpenVINO IR', log)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = osp.join(tmp, 'model.onnx')
        write_onnx(module, torch.zeros(1, 3, *input_size), onnx_path, 'image', names,
                   DEFAULT_OPSET)
        ov_model = ov.convert_model(onnx_path)
        metadata = dict(task=task, outputs=names, input_size=list(input_size),
                        input=f'image: float32 1x3xHxW pixels 0-255, {norm.channel_order}',
                        mean=list(norm.mean), std=list(norm.std),
                        dilated_as_dense=dilated_as_dense, precision=quantize or 'fp32')
        ov_model.set_rt_info(json.dumps(metadata), [METADATA_KEY])
        fp32_xml = osp.join(tmp, 'fp32.xml') if quantize else out
        ov.save_model(ov_model, fp32_xml, compress_to_fp16=False)
        image = check_image(task, input_size, norm)
        ref = reference_outputs(model, task, image, norm)
        threads = torch.get_num_threads()
        fp32 = compile_openvino(fp32_xml, threads)
        check = check_exported_file(out, 'OpenVINO (CPU, f32)', names, ref,
                                    run_openvino(fp32, image.numpy()), params, log, rel_tol)
        result = OpenVINOExport(**vars(check))
        if not quantize:
            return result
        calibration = int8.calibration_images(calib, input_size, norm.channel_order)
        log(f'quantizing to int8 (NNCF) on {len(calibration)} images ...')
        quantized = quantize_openvino(ov_model, [c[None].numpy() for c in calibration])
        quantized.set_rt_info(json.dumps(metadata), [METADATA_KEY])
        ov.save_model(quantized, out, compress_to_fp16=False)
        compiled = compile_openvino(out, threads)
        result.int8 = int8.evaluate_int8(
            model, task, norm, names, 'OpenVINO (CPU)', fp32_xml, out,
            lambda x: run_openvino(fp32, x.numpy()), lambda x: run_openvino(compiled, x.numpy()),
            calibration, calib, log, min_psnr, min_pixel_agreement, min_top1_agreement)
        return result
