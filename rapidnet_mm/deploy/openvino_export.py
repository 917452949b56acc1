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
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from .export_module import ExportError
from .onnx_export import DEFAULT_OPSET, write_onnx
from .pipeline import Exporter, Runner

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


def quantize_openvino(ov_model, calibration: Sequence[np.ndarray]):
    """The NNCF int8 form of an ``openvino.Model``, calibrated on every array of
    ``calibration`` (float32, shaped like the input)."""
    nncf = import_nncf()
    dataset = nncf.Dataset([np.ascontiguousarray(c, np.float32) for c in calibration])
    return nncf.quantize(ov_model, dataset, preset=nncf.QuantizationPreset.PERFORMANCE,
                         subset_size=len(calibration))


def compile_openvino(model, threads: Optional[int] = None, perf_count: bool = False):
    """``model`` (an IR/ONNX path or an ``openvino.Model``) compiled for the CPU in float32, for
    latency; ``threads`` sets its thread count (default: OpenVINO's own choice), ``perf_count``
    turns its per-node performance counters on (``request.profiling_info``)."""
    ov = import_openvino()
    config = {'INFERENCE_PRECISION_HINT': 'f32', 'PERFORMANCE_HINT': 'LATENCY'}
    if threads:
        config['INFERENCE_NUM_THREADS'] = threads
    if perf_count:
        config['PERF_COUNT'] = True
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


class OpenVINOExporter(Exporter):
    """``--format openvino``: ``out`` (``NAME.xml``) and ``NAME.bin`` beside it, compiled on the
    CPU and compared with PyTorch. The IR takes ``image`` (float32 1x3xHxW pixel values 0-255
    in the model's channel order) and outputs ``logits``, ``seg_logits`` or ``feat_s4`` ...
    ``feat_s32``. With ``--quantize int8`` the IR written is NNCF's int8 one, measured against
    fp32."""
    kind = 'OpenVINO IR'
    runner = 'OpenVINO (CPU, f32)'
    quantizer = 'NNCF'
    int8_runner = 'OpenVINO (CPU)'

    @classmethod
    def check_options(cls, options: Dict[str, object]) -> None:
        import_openvino()
        if options.get('quantize'):
            import_nncf()

    def metadata(self) -> str:
        """What the IR's runtime info holds (:func:`read_metadata`)."""
        return json.dumps(dict(
            task=self.task, outputs=self.names, input_size=list(self.input_size),
            input=f'image: float32 1x3xHxW pixels 0-255, {self.norm.channel_order}',
            mean=list(self.norm.mean), std=list(self.norm.std),
            dilated_as_dense=self.dilated_as_dense, precision=self.quantized or 'fp32'))

    def write(self, path: str) -> None:
        ov = import_openvino()
        with tempfile.TemporaryDirectory() as tmp:
            onnx_path = osp.join(tmp, 'model.onnx')
            write_onnx(self.module, self.example, onnx_path, 'image', self.names, DEFAULT_OPSET)
            self.ov_model = ov.convert_model(onnx_path)
        self.ov_model.set_rt_info(self.metadata(), [METADATA_KEY])
        ov.save_model(self.ov_model, path, compress_to_fp16=False)

    @classmethod
    def load(cls, path: str) -> Runner:
        compiled = compile_openvino(path, torch.get_num_threads())
        return lambda x: [torch.from_numpy(o) for o in run_openvino(compiled, x.numpy())]

    def quantize(self, fp32_path: str, path: str, calibration: torch.Tensor) -> None:
        quantized = quantize_openvino(self.ov_model, [c[None].numpy() for c in calibration])
        quantized.set_rt_info(self.metadata(), [METADATA_KEY])
        import_openvino().save_model(quantized, path, compress_to_fp16=False)
