"""Inference runtimes for an eval-mode PyTorch model (usually the reparameterised one).

- ``eager``: the module as it is.
- ``torchscript``: traced and frozen (weights become constants, so BatchNorm and constant
  multiplies fold into the convolutions), then ``torch.jit.optimize_for_inference``, which on CPU
  prepacks the convolution weights for oneDNN (MKLDNN) once instead of at every call. The frozen
  module is what ``--format torchscript`` saves; the oneDNN step is done after loading,
  because its prepacked constants cannot be serialised.
- ``inductor``: ``torch.compile`` with inductor's ``freezing`` option (the same constant folding
  and weight prepacking, plus generated kernels for elementwise chains); compiles at the first
  call and leaves no file.
- ``onnxruntime``: the module written to ONNX by the project's one exporter (``write_onnx``, as
  ``--format onnx`` does) at the example's fixed shape, run by an onnxruntime CPU session.
- ``openvino``: the same ONNX file compiled by OpenVINO for the CPU in float32
  (``compile_openvino``, as ``--format openvino`` checks its IR).
- ``executorch``: the module lowered to XNNPACK by ``--format executorch``'s pipeline
  (``lower_module``), run by ExecuTorch's Python runtime.

The last three run on CPU only, each with ``torch.get_num_threads()`` threads, and take and
return torch tensors so that callers treat every runtime alike.

None of them changes the arithmetic beyond float rounding; the benchmark and the export tool
check that. The exception is static int8: ``build_runtime(..., calibration=images)`` quantizes
the file of ``onnxruntime``, ``openvino`` or ``executorch`` as ``--quantize int8`` does.
"""
import os.path as osp
import tempfile
import warnings
from typing import Callable, List, Optional, Sequence

import torch
import torch.nn as nn

from ..errors import RapidNetError

RUNTIMES = ('eager', 'torchscript', 'inductor', 'onnxruntime', 'openvino', 'executorch')
FILE_RUNTIMES = ('onnxruntime', 'openvino', 'executorch')  # run an exported file, CPU only
INT8_RUNTIMES = FILE_RUNTIMES  # those with a static int8 form (--quantize int8)


class RuntimeSetupError(RapidNetError, ValueError):
    """A module or setting a runtime cannot take; raised before any tracing or compiling."""


def _check_eval(module: nn.Module, runtime: str) -> None:
    training = [name or type(module).__name__ for name, m in module.named_modules() if m.training]
    if training:
        raise RuntimeSetupError(f'{runtime} needs an eval-mode module, but {len(training)} '
                                f'submodules are in training mode ({", ".join(training[:3])}, ...)'
                                '; call .eval() first')


def freeze_torchscript(module: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    """Trace ``module`` on ``example`` and freeze it (portable: any device, no oneDNN yet).

    Raises:
        RuntimeSetupError: the module is not in eval mode.
    """
    _check_eval(module, 'torchscript')
    with torch.no_grad(), warnings.catch_warnings():
        # Tracer warnings about Python values in timm models' shape arithmetic; the outputs are
        # checked against the eager module by every caller.
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        return torch.jit.freeze(torch.jit.trace(module, example))


def optimize_torchscript(frozen: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """``torch.jit.optimize_for_inference`` (oneDNN weight prepacking on CPU); not savable."""
    with torch.no_grad():
        return torch.jit.optimize_for_inference(frozen)


def load_torchscript(path: str, optimize: bool = True) -> torch.jit.ScriptModule:
    """Load a module written by ``--format torchscript`` on CPU, optimised for inference
    unless ``optimize`` is False."""
    module = torch.jit.load(path, map_location='cpu')
    return optimize_torchscript(module) if optimize else module


def build_runtime(module: nn.Module, runtime: str, example: torch.Tensor,
                  calibration: Optional[Sequence[torch.Tensor]] = None) -> Callable:
    """``module`` ready to run under ``runtime`` at inputs shaped like ``example``.

    Args:
        module: An eval-mode module.
        runtime: A key of RUNTIMES.
        example: An input of the shape it will be run at.
        calibration: Inputs shaped like ``example`` to calibrate a static int8 form on
            (INT8_RUNTIMES only), or None for the fp32 form.

    Raises:
        RuntimeSetupError: an unknown runtime, a module in training mode, or int8 for a runtime
            without it.
    """
    if runtime not in RUNTIMES:
        raise RuntimeSetupError(f'unknown runtime {runtime!r}; choose from {RUNTIMES}')
    if calibration is not None and runtime not in INT8_RUNTIMES:
        raise RuntimeSetupError(f'int8 needs one of the runtimes {INT8_RUNTIMES}, not {runtime}')
    if runtime == 'eager':
        return module
    if runtime == 'torchscript':
        return optimize_torchscript(freeze_torchscript(module, example))
    _check_eval(module, runtime)
    if runtime in FILE_RUNTIMES:
        return _build_file_runtime(module, runtime, example, calibration)
    return torch.compile(module, options={'freezing': True})


def write_runtime_file(module: nn.Module, runtime: str, example: torch.Tensor,
                       calibration: Optional[Sequence[torch.Tensor]], folder: str):
    """Write into ``folder`` what a file runtime runs for ``module`` (int8 when ``calibration``
    is given): the ONNX file of ``onnxruntime`` (the int8 one at the opset ``export.py
    --quantize int8`` writes, GELU as one op), the ONNX file or the NNCF int8 model of
    ``openvino``, the ``.pte`` of ``executorch``.

    Returns:
        The path of the file, or for OpenVINO int8 the ``openvino.Model``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)  # as in freeze_torchscript
        if runtime == 'executorch':
            from .executorch_export import lower_module
            path = osp.join(folder, 'model.pte')
            lower_module(module, example, path, 'xnnpack', calibration)
            return path
        from .onnx_export import DEFAULT_OPSET, int8_default_opset, quantize_onnx, write_onnx
        path = osp.join(folder, 'model.onnx')
        int8_onnx = runtime == 'onnxruntime' and calibration is not None
        write_onnx(module, example, path, 'input', [],
                   int8_default_opset() if int8_onnx else DEFAULT_OPSET)
        if int8_onnx:
            quantize_onnx(path, path, 'input', [c.numpy() for c in calibration])
        if runtime == 'openvino' and calibration is not None:
            from .openvino_export import import_openvino, quantize_openvino
            return quantize_openvino(import_openvino().convert_model(path),
                                     [c.numpy() for c in calibration])
        return path


def _build_file_runtime(module: nn.Module, runtime: str, example: torch.Tensor,
                        calibration: Optional[Sequence[torch.Tensor]]) -> Callable:
    """``module`` exported to ONNX and loaded by onnxruntime or OpenVINO, or lowered to an
    ExecuTorch program (see the module doc); int8 when ``calibration`` is given."""
    if example.device.type != 'cpu':
        raise RuntimeSetupError(f'{runtime} runs on the CPU here; use --device cpu')
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        if runtime == 'executorch':
            from .executorch_export import load_pte, set_threads
            set_threads(threads)
            pte = load_pte(write_runtime_file(module, runtime, example, calibration, tmp))
            # the runtime's tensors may be reused by its next call: copy them out
            return lambda x: _single([o.clone() for o in pte(x)])
        model = write_runtime_file(module, runtime, example, calibration, tmp)
        if runtime == 'onnxruntime':
            from .onnx_export import onnxruntime_session
            # No spinning: the benchmark's sessions (every model and form) and runtimes take
            # turns, and spinning pools made its onnxruntime figures 2-3x slower (deployment.md 6).
            session = onnxruntime_session(model, threads, spin=False)
            run = lambda x: session.run(None, {'input': x})  # noqa: E731
        else:
            from .openvino_export import compile_openvino, run_openvino
            compiled = compile_openvino(model, threads)
            run = lambda x: run_openvino(compiled, x)  # noqa: E731

    def forward(x: torch.Tensor):
        return _single([torch.from_numpy(o) for o in run(x.contiguous().numpy())])
    return forward


def _single(outputs: List[torch.Tensor]):
    """One output as a tensor, several as a tuple (as the PyTorch module returns them)."""
    return outputs[0] if len(outputs) == 1 else tuple(outputs)
