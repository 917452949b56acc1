"""The format table behind ``tools/deployment/export.py``: which file each format writes, which
options it takes, and the one entry to exporting (:func:`export_model`).

A format is one entry here plus its :class:`~.pipeline.Exporter` subclass (its hooks) in its own
module, imported only when the format is asked for, so that a missing optional package concerns
only its own format. The steps every format shares are :func:`~.pipeline.run_export`.
``tools/deployment/export.py`` is a command line over :func:`check_request` (before the model is
built) and :func:`export_model`.
"""
import os.path as osp
from typing import Callable, Dict, Tuple

import torch.nn as nn

from . import int8
from .export_module import ExportError, option_flag
from .normalization import InputNormalization
from .pipeline import Format, Runner, run_export

FORMATS: Dict[str, Format] = {
    'coreml': Format('Core ML ML program', '.mlpackage', 'coreml.CoreMLExporter',
                     ('precision', 'min_target', 'compress', 'min_psnr', 'benchmark', 'metadata'),
                     refused=(('quantize', 'Core ML\'s activation quantization calibrates on '
                               'macOS only; compress the weights with --compress int8 (or '
                               'palette6/palette4) instead'), )),
    'executorch': Format('ExecuTorch program', '.pte', 'executorch_export.ExecuTorchExporter',
                         ('delegate', ), int8=True),
    'onnx': Format('ONNX', '.onnx', 'onnx_export.OnnxExporter', ('opset', ), int8=True),
    'openvino': Format('OpenVINO IR (.xml and .bin)', '.xml', 'openvino_export.OpenVINOExporter',
                       int8=True),
    'torchscript': Format('TorchScript', '.pt', 'torchscript_export.TorchScriptExporter'),
}


def check_request(fmt: str, out: str, options: Dict[str, object]) -> Format:
    """Refuse a request before anything is built: an unknown format, an ``--out`` name the format
    does not write, an option of another format, options of the format that do not go together
    (its exporter's ``check_options``), or int8 options that cannot work.

    Args:
        fmt: A key of FORMATS.
        out: The output path.
        options: The format-specific options given (keyword name -> value; None = not given).

    Raises:
        ExportError: with one line naming the problem and the fix.
    """
    if fmt not in FORMATS:
        raise ExportError(f'unknown format {fmt!r}; choose one of {", ".join(FORMATS)}')
    spec = FORMATS[fmt]
    for name, value in options.items():
        if value is None or name in spec.all_options:
            continue
        reason = dict(spec.refused).get(name)
        if reason:
            raise ExportError(f'{option_flag(name)} is not offered for --format {fmt}: {reason}')
        owners = [f for f, s in FORMATS.items() if name in s.all_options]
        raise ExportError(f'{option_flag(name)} is an option of --format {" / ".join(owners)}, '
                          f'not of --format {fmt}: drop it')
    if not out.endswith(spec.suffix) or osp.basename(out) == spec.suffix:
        raise ExportError(f'--out {out!r}: --format {fmt} writes a {spec.title} file; name it '
                          f'*{spec.suffix}')
    folder = osp.dirname(osp.abspath(out))
    if osp.exists(folder) and not osp.isdir(folder):
        raise ExportError(f'--out {out!r}: {folder} is a file, not a folder')
    exporter = spec.exporter_class()
    exporter.check_options(exporter.with_defaults(options))
    if spec.int8:
        int8.check_request(options)
    return spec


def export_model(model: nn.Module, fmt: str, task: str, input_size: Tuple[int, int],
                 norm: InputNormalization, out: str, dilated_as_dense: bool = False,
                 log: Callable[[str], None] = print, **options):
    """Export ``model`` in format ``fmt`` to ``out`` and check it against PyTorch: the request
    checked (:func:`check_request`), then the pipeline (:func:`~.pipeline.run_export`), which
    puts the file in place only when its checks pass.

    Args:
        model: An eval-mode model (see :func:`~rapidnet_mm.deploy.export_module.prepare_export`).
        fmt: A key of FORMATS.
        task: 'classifier', 'backbone' or 'segmentor'.
        input_size: ``(H, W)``, multiples of 32.
        norm: The model's input normalisation, built into the exported graph.
        out: The file to write (its suffix: FORMATS[fmt].suffix).
        dilated_as_dense: Rewrite dilated convolutions as dense ones.
        log: Progress printer.
        **options: The format's own options (FORMATS[fmt].all_options); None means the default.

    Returns:
        The format's result (with ``path`` set to ``out``).

    Raises:
        ExportError: a refused request or model, or an exported file that does not reproduce
            the model.
    """
    spec = check_request(fmt, out, options)
    exporter = spec.exporter_class()(spec, model, task, input_size, norm, out, dilated_as_dense,
                                     log, **options)
    return run_export(exporter)


def load_exported(fmt: str, path: str) -> Runner:
    """A file written by ``export_model`` in a format this machine runs (executorch with
    XNNPACK, onnx, openvino, torchscript), as a function of a pixel batch shaped like the file's
    input, returning the outputs as tensors."""
    if fmt not in FORMATS:
        raise ExportError(f'unknown format {fmt!r}; choose one of {", ".join(FORMATS)}')
    try:
        return FORMATS[fmt].exporter_class().load(path)
    except NotImplementedError:
        raise ExportError(f'--format {fmt} files cannot be run here') from None


__all__ = ['FORMATS', 'Format', 'check_request', 'export_model', 'load_exported', 'option_flag']
