"""Deployment: reparameterise, check, and export RapidNet models (Core ML, ONNX), and time them.

Core ML and ONNX live in their own modules (``coreml``, ``onnx_export``) so that importing this
package does not import coremltools or onnxruntime.
"""
from .dilated import dense_equivalent, dilated_to_dense
from .export_module import (TASKS, ExportError, ExportModule, Numerics, check_eval_mode,
                            check_input_size, check_numerics, check_task, output_names,
                            prepare_export, psnr, reference_outputs)
from .model_io import (InputNormalization, build_model, input_normalization,
                       load_model_config)
from .reparameterize import FoldedClsHead, fold_cls_head, reparameterize_model

__all__ = [
    'TASKS', 'ExportError', 'ExportModule', 'FoldedClsHead', 'InputNormalization', 'Numerics',
    'build_model', 'check_eval_mode', 'check_input_size', 'check_numerics', 'check_task',
    'dense_equivalent', 'dilated_to_dense', 'fold_cls_head', 'input_normalization',
    'load_model_config', 'output_names', 'prepare_export', 'psnr', 'reference_outputs',
    'reparameterize_model'
]
