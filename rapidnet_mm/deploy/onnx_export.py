"""ONNX export of the same export module as Core ML (mean subtracted in the graph, 1/std folded
into the first conv), checked with onnxruntime against the PyTorch model."""
import inspect
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from .export_module import (ExportedFileCheck, check_exported_file, prepare_file_export,
                            random_image, reference_outputs)
from .normalization import InputNormalization

DEFAULT_OPSET = 17


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


def export_onnx(model: nn.Module, task: str, input_size: Tuple[int, int],
                norm: InputNormalization, out: str, dilated_as_dense: bool = False,
                opset: int = DEFAULT_OPSET, log: Callable[[str], None] = print,
                rel_tol: float = 1e-4) -> ExportedFileCheck:
    """Check, reparameterise and export ``model``; compare onnxruntime with PyTorch.

    The ONNX model takes ``image``: float32 1x3xHxW pixel values 0-255 in the model's channel
    order, and outputs ``logits`` or ``feat_s4`` ... ``feat_s32``.

    Raises:
        ExportError: bad settings or model (before export), or onnxruntime's outputs differing
            from PyTorch's by more than ``rel_tol`` of the reference's largest magnitude.
    """
    module, names, params = prepare_file_export(model, task, input_size, norm, dilated_as_dense,
                                                'ONNX', log)
    write_onnx(module, torch.zeros(1, 3, *input_size), out, 'image', names, opset)
    image = random_image(input_size)
    ref = reference_outputs(model, task, image, norm)
    got = run_onnxruntime(out, image.numpy())
    return check_exported_file(out, 'onnxruntime', names, ref, got, params, log, rel_tol)
