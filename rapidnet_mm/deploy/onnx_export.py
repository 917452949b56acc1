"""ONNX export of the same export module as Core ML (mean subtracted in the graph, 1/std folded
into the first conv), checked with onnxruntime against the PyTorch model.

``--quantize int8``: ONNX Runtime's static quantization in QDQ format (``quantize_static``, after
its ``quant_pre_process``), weights symmetric per output channel in 7 bits (``reduce_range``),
activations uint8 per tensor (U8S8: int8 activations ran RapidNet-Ti 6x slower than uint8 ones in
ONNX Runtime 1.32 on an AVX512 CPU), calibrated on the calibration images (see ``int8``).

Why 7-bit weights: the file runs wherever it is deployed, and on x86-64 CPUs without VNNI ONNX
Runtime's U8S8 kernels add pairs of uint8 x int8 products into int16, which saturates with full
8-bit weights (255 * 127 * 2 > 32767); with weights in [-64, 64] the pair sum stays below 32767.
ONNX Runtime's ``quantize_static`` documentation recommends exactly this for such CPUs. CPUs with
VNNI or AMX accumulate in int32 and lose only the weights' eighth bit.
"""
import inspect
import os.path as osp
import tempfile
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from . import int8
from .cpu_features import cpu_features
from .export_module import (ExportedFileCheck, check_exported_file, check_image,
                            prepare_file_export, reference_outputs)
from .int8 import Int8Report
from .normalization import InputNormalization

DEFAULT_OPSET = 17
# int8 weights are quantized to [-WEIGHT_BOUND, WEIGHT_BOUND] (quantize_static's reduce_range)
WEIGHT_BOUND = 64


def write_onnx(module: nn.Module, example: torch.Tensor, out: str, input_name: str,
               output_names: Sequence[str], opset: int = DEFAULT_OPSET) -> None:
    """The one ONNX exporter of the project (``--format onnx``, the OpenVINO export and
    the benchmark's onnxruntime/openvino runtimes): the TorchScript-based ``torch.onnx.export``
    at the fixed shape of ``example``."""
    # torch >= 2.5 has both exporters (and from 2.9 defaults to the dynamo one); before, the
    # TorchScript-based one is the only one and `dynamo` no keyword.
    legacy = {'dynamo': False} if 'dynamo' in inspect.signature(torch.onnx.export).parameters \
        else {}
    with torch.no_grad():
        torch.onnx.export(module, (example, ), out, input_names=[input_name],
                          output_names=list(output_names), opset_version=opset, **legacy)


def onnxruntime_session(path: str, threads: Optional[int] = None, spin: bool = True):
    """An onnxruntime CPU session for ``path``.

    Args:
        path: The ONNX file.
        threads: Its intra-op thread pool (default: onnxruntime's own choice).
        spin: Whether those threads busy-wait for more work after each run (onnxruntime's
            default). Where several sessions or runtimes take turns on few cores, the spinning
            threads of one take the cores from the next: turn it off there.
    """
    import onnxruntime as ort
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if not spin:
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def run_onnxruntime(path: str, image: np.ndarray) -> List[np.ndarray]:
    """Outputs of the ONNX model at ``path`` for ``image`` (float32 NCHW pixels), on CPU."""
    return onnxruntime_session(path).run(None, {'image': image.astype(np.float32)})


def check_request(opset: Optional[int] = None, quantize: Optional[str] = None,
                  calib: Optional[str] = None, min_psnr: Optional[float] = None,
                  min_pixel_agreement: Optional[float] = None,
                  min_top1_agreement: Optional[float] = None) -> None:
    """Refuse int8 options that cannot work, before a model is built."""
    int8.check_request(quantize, calib, min_psnr, min_pixel_agreement,
                       min_top1_agreement)


def quantize_onnx(fp32_path: str, out: str, input_name: str,
                  calibration: Sequence[np.ndarray]) -> None:
    """Write the static int8 (QDQ) form of the ONNX file ``fp32_path`` to ``out``, calibrated on
    ``calibration`` (float32 arrays shaped like the input, one per run)."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{input_name: np.ascontiguousarray(c, np.float32)}
                                 for c in calibration])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        # ONNX Runtime's recommended step first: shape inference and graph clean-up (it turns
        # the exporter's Identity-shared initializers back into plain ones, so every bias
        # quantizes)
        prepared = osp.join(tmp, 'prepared.onnx')
        quant_pre_process(fp32_path, prepared)
        quantize_static(prepared, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=True, weight_type=QuantType.QInt8,
                        activation_type=QuantType.QUInt8)


def scheme_notes() -> List[str]:
    """The report's line on the int8 scheme, for the CPU at hand."""
    cpu = cpu_features()
    line = (f'scheme: uint8 activations, 7-bit weights (within +-{WEIGHT_BOUND}), so that no '
            'x86-64 CPU saturates its int16 sums')
    if cpu.int16_accumulation:
        return [line + '; this CPU has no VNNI, where full 8-bit weights would saturate']
    return [line]


@dataclass
class OnnxExport(ExportedFileCheck):
    """An ONNX export's check against PyTorch (the fp32 file's), and with ``--quantize`` the
    int8 report."""
    int8: Optional[Int8Report] = None


def export_onnx(model: nn.Module, task: str, input_size: Tuple[int, int],
                norm: InputNormalization, out: str, dilated_as_dense: bool = False,
                opset: int = DEFAULT_OPSET, log: Callable[[str], None] = print,
                quantize: Optional[str] = None, calib: Optional[str] = None,
                min_psnr: Optional[float] = None, min_pixel_agreement: Optional[float] = None,
                min_top1_agreement: Optional[float] = None,
                rel_tol: float = 1e-4) -> OnnxExport:
    """Check, reparameterise and export ``model``; compare onnxruntime with PyTorch; with
    ``quantize='int8'`` write the int8 (QDQ) file instead and measure it against fp32.

    The ONNX model takes ``image``: float32 1x3xHxW pixel values 0-255 in the model's channel
    order, and outputs ``logits``, ``seg_logits`` or ``feat_s4`` ... ``feat_s32``.

    Raises:
        ExportError: bad settings or model (before export); onnxruntime's outputs of the fp32
            file differing from PyTorch's by more than ``rel_tol`` of the reference's largest
            magnitude; an int8 file below the agreement floor.
    """
    check_request(opset, quantize, calib, min_psnr, min_pixel_agreement,
                  min_top1_agreement)
    module, names, params = prepare_file_export(model, task, input_size, norm, dilated_as_dense,
                                                'ONNX', log)
    image = check_image(task, input_size, norm)
    ref = reference_outputs(model, task, image, norm)
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = osp.join(tmp, 'fp32.onnx') if quantize else out
        write_onnx(module, torch.zeros(1, 3, *input_size), fp32_path, 'image', names, opset)
        fp32 = onnxruntime_session(fp32_path, torch.get_num_threads(), spin=False)
        check = check_exported_file(out, 'onnxruntime', names, ref,
                                    fp32.run(None, {'image': image.numpy()}), params, log,
                                    rel_tol)
        result = OnnxExport(**vars(check))
        if not quantize:
            return result
        calibration = int8.calibration_images(calib, input_size, norm.channel_order)
        log(f'quantizing to int8 (ONNX Runtime QDQ) on {len(calibration)} images ...')
        quantize_onnx(fp32_path, out, 'image', [c[None].numpy() for c in calibration])
        quantized = onnxruntime_session(out, torch.get_num_threads(), spin=False)
        result.int8 = int8.evaluate_int8(
            model, task, norm, names, 'ONNX Runtime', fp32_path, out,
            lambda x: fp32.run(None, {'image': x.numpy()}),
            lambda x: quantized.run(None, {'image': x.numpy()}), calibration, calib, log,
            min_psnr, min_pixel_agreement, min_top1_agreement, notes=scheme_notes())
        return result
