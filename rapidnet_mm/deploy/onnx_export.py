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
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from .cpu_features import cpu_features
from .pipeline import Exporter, Runner

DEFAULT_OPSET = 17
# The opset of the --quantize int8 file where torch's exporter writes it: opset 20 has GELU as one
# op. At 17 GELU is five (Div, Erf, Add, Mul, Mul), each wrapped in its own QuantizeLinear/
# DequantizeLinear pair, and RapidNet-Ti's int8 file ran slower than its fp32 one (0.93x);
# at 20 it ran 1.33x faster (224x224, 2 threads, ONNX Runtime 1.32).
GELU_OPSET = 20
# int8 weights are quantized to [-WEIGHT_BOUND, WEIGHT_BOUND] (quantize_static's reduce_range)
WEIGHT_BOUND = 64


def int8_default_opset() -> int:
    """:data:`GELU_OPSET` where torch's TorchScript-based exporter writes it (not torch 2.1's,
    which stops at 19), else :data:`DEFAULT_OPSET`."""
    from torch.onnx import _constants  # the exporter's own limits (no public accessor)
    top = getattr(_constants, 'ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET', _constants.ONNX_MAX_OPSET)
    return GELU_OPSET if top >= GELU_OPSET else DEFAULT_OPSET


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


def onnxruntime_session(path: str, threads: Optional[int] = None, spin: bool = True,
                        profile_prefix: Optional[str] = None):
    """An onnxruntime CPU session for ``path``.

    Args:
        path: The ONNX file.
        threads: Its intra-op thread pool (default: onnxruntime's own choice).
        spin: Whether those threads busy-wait for more work after each run (onnxruntime's
            default). Where several sessions or runtimes take turns on few cores, the spinning
            threads of one take the cores from the next: turn it off there.
        profile_prefix: Turn onnxruntime's profiler on, its file named with this prefix
            (``session.end_profiling()`` writes it and returns its path).
    """
    import onnxruntime as ort
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if not spin:
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def run_onnxruntime(path: str, image: np.ndarray) -> List[np.ndarray]:
    """Outputs of the ONNX model at ``path`` for ``image`` (float32 NCHW pixels), on CPU."""
    return onnxruntime_session(path).run(None, {'image': image.astype(np.float32)})


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


class OnnxExporter(Exporter):
    """``--format onnx``: the ONNX file takes ``image`` (float32 1x3xHxW pixel values 0-255 in
    the model's channel order) and outputs ``logits``, ``seg_logits`` or ``feat_s4`` ...
    ``feat_s32``; it is run by onnxruntime and compared with PyTorch. With ``--quantize int8``
    the file written is the int8 (QDQ) one, measured against fp32."""
    kind = 'ONNX'
    runner = 'onnxruntime'
    defaults = dict(opset=DEFAULT_OPSET)
    quantizer = 'ONNX Runtime QDQ'
    int8_runner = 'ONNX Runtime'

    @classmethod
    def with_defaults(cls, options):
        """The default opset of an int8 file is :func:`int8_default_opset`; ``--opset`` wins."""
        filled = super().with_defaults(options)
        if options.get('opset') is None and options.get('quantize'):
            filled['opset'] = int8_default_opset()
        return filled

    def write(self, path: str) -> None:
        write_onnx(self.module, self.example, path, 'image', self.names, self.options['opset'])

    @classmethod
    def load(cls, path: str) -> Runner:
        session = onnxruntime_session(path, torch.get_num_threads(), spin=False)
        name = session.get_inputs()[0].name
        return lambda x: [torch.from_numpy(o) for o in session.run(None, {name: x.numpy()})]

    def quantize(self, fp32_path: str, path: str, calibration: torch.Tensor) -> None:
        quantize_onnx(fp32_path, path, 'image', [c[None].numpy() for c in calibration])

    def notes(self) -> List[str]:
        opset = self.options['opset']
        gelu = ('GELU as one op' if opset >= GELU_OPSET else
                f'GELU as five ops, each quantized on its own: opset {GELU_OPSET} or newer runs '
                'faster')
        return scheme_notes() + [f'opset {opset}: {gelu}']
