"""Deployment: reparameterise, check, and export RapidNet models (Core ML, ExecuTorch, ONNX,
OpenVINO, TorchScript; static int8 for ExecuTorch, ONNX and OpenVINO), run them under an inference
runtime, and time them.

Every format runs one pipeline (``pipeline``), entered through the format table (``formats``);
each format's hooks live in their own module (``coreml``, ``executorch_export``, ``onnx_export``,
...) so that importing this package does not import coremltools, executorch or onnxruntime.
"""
from .dilated import dense_equivalent, dilated_to_dense
from .comparison import Numerics, check_numerics, psnr, reference_outputs
from .export_module import (TASKS, ExportError, ExportModule, check_eval_mode, check_input_size,
                            check_task, output_names, prepare_export)
from .normalization import InputNormalization, input_normalization
from .reparameterize import reparameterize_model
from .runtime import RUNTIMES, RuntimeSetupError, build_runtime, load_torchscript

__all__ = [
    'RUNTIMES', 'TASKS', 'ExportError', 'ExportModule', 'InputNormalization',
    'Numerics', 'RuntimeSetupError', 'build_runtime', 'check_eval_mode',
    'check_input_size', 'check_numerics', 'check_task', 'dense_equivalent', 'dilated_to_dense',
    'input_normalization', 'load_torchscript',
    'output_names', 'prepare_export', 'psnr', 'reference_outputs', 'reparameterize_model'
]
