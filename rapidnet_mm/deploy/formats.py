"""One entry point for every export format: which file each writes, which options each takes, and
writing it so that a failed export leaves nothing behind.

``tools/deployment/export.py`` is a command line over :func:`check_request` (before the model is
built) and :func:`export_model`. The format modules (``coreml``, ``executorch_export``,
``onnx_export``, ``openvino_export``, ``torchscript_export``) are imported only when their format
is asked for, so that a missing optional package concerns only its own format.
"""
import importlib
import os
import os.path as osp
import shutil
import tempfile
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from .export_module import ExportError
from .normalization import InputNormalization


@dataclass(frozen=True)
class Format:
    """An export format.

    Attributes:
        title: Its name for people.
        suffix: What ``--out`` must end with.
        module: The module (in this package) holding ``function``.
        function: ``(model, task, input_size, norm, out, dilated_as_dense, log=, **options)``;
            writes ``out`` (and any sidecar files beside it), checks it against PyTorch and
            returns a result with ``format()``.
        options: The format-specific options it takes, by their keyword names.
        check: A function of the module that refuses bad combinations of those options (called
            with the options given), or None.
        refused: Options of other formats that this one refuses with a reason of its own
            (option keyword -> the rest of the error line), instead of the generic one.
    """
    title: str
    suffix: str
    module: str
    function: str
    options: Tuple[str, ...] = ()
    check: Optional[str] = None
    refused: Tuple[Tuple[str, str], ...] = ()


# The static int8 options (rapidnet_mm/deploy/int8.py) of the formats that offer them.
INT8_OPTIONS = ('quantize', 'calib', 'min_pixel_agreement', 'min_psnr', 'min_top1_agreement')

FORMATS: Dict[str, Format] = {
    'coreml': Format('Core ML ML program', '.mlpackage', 'coreml', 'export_coreml',
                     ('precision', 'min_target', 'compress', 'min_psnr', 'benchmark', 'metadata'),
                     'check_request',
                     refused=(('quantize', 'Core ML\'s activation quantization calibrates on '
                               'macOS only; compress the weights with --compress int8 (or '
                               'palette6/palette4) instead'), )),
    'executorch': Format('ExecuTorch program', '.pte', 'executorch_export', 'export_executorch',
                         ('delegate', ) + INT8_OPTIONS, 'check_request'),
    'onnx': Format('ONNX', '.onnx', 'onnx_export', 'export_onnx', ('opset', ) + INT8_OPTIONS,
                   'check_request'),
    'openvino': Format('OpenVINO IR (.xml and .bin)', '.xml', 'openvino_export',
                       'export_openvino', INT8_OPTIONS, 'check_request'),
    'torchscript': Format('TorchScript', '.pt', 'torchscript_export', 'export_torchscript'),
}


def option_flag(name: str) -> str:
    """The command-line spelling of an option keyword (``min_target`` -> ``--min-target``)."""
    return '--' + name.replace('_', '-')


def check_request(fmt: str, out: str, options: Dict[str, object]) -> Format:
    """Refuse a request before anything is built: an unknown format, an ``--out`` name the format
    does not write, an option of another format, or options of the format that do not go
    together.

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
        if value is None or name in spec.options:
            continue
        reason = dict(spec.refused).get(name)
        if reason:
            raise ExportError(f'{option_flag(name)} is not offered for --format {fmt}: {reason}')
        owners = [f for f, s in FORMATS.items() if name in s.options]
        raise ExportError(f'{option_flag(name)} is an option of --format {" / ".join(owners)}, '
                          f'not of --format {fmt}: drop it')
    if not out.endswith(spec.suffix) or osp.basename(out) == spec.suffix:
        raise ExportError(f'--out {out!r}: --format {fmt} writes a {spec.title} file; name it '
                          f'*{spec.suffix}')
    folder = osp.dirname(osp.abspath(out))
    if osp.exists(folder) and not osp.isdir(folder):
        raise ExportError(f'--out {out!r}: {folder} is a file, not a folder')
    if spec.check:
        module = importlib.import_module(f'{__package__}.{spec.module}')
        getattr(module, spec.check)(**{k: v for k, v in options.items() if v is not None})
    return spec


def export_model(model: nn.Module, fmt: str, task: str, input_size: Tuple[int, int],
                 norm: InputNormalization, out: str, dilated_as_dense: bool = False,
                 log: Callable[[str], None] = print, **options):
    """Export ``model`` in format ``fmt`` to ``out`` and check it against PyTorch.

    Everything is written into a temporary folder beside ``out`` first and moved into place only
    when the format's own checks pass, so a refused or failed export leaves neither a partial
    file nor a file that failed its check (and an existing ``out`` stays as it was).

    Args:
        model: An eval-mode model (see :func:`~rapidnet_mm.deploy.export_module.prepare_export`).
        fmt: A key of FORMATS.
        task: 'classifier', 'backbone' or 'segmentor'.
        input_size: ``(H, W)``, multiples of 32.
        norm: The model's input normalisation, built into the exported graph.
        out: The file to write (its suffix: FORMATS[fmt].suffix).
        dilated_as_dense: Rewrite dilated convolutions as dense ones.
        log: Progress printer.
        **options: The format's own options (FORMATS[fmt].options); None means the default.

    Returns:
        The format's result (with ``path`` set to ``out``).

    Raises:
        ExportError: a refused request or model, or an exported file that does not reproduce
            the model.
    """
    check_request(fmt, out, options)
    given = {k: v for k, v in options.items() if v is not None}
    spec = FORMATS[fmt]
    export = getattr(importlib.import_module(f'{__package__}.{spec.module}'), spec.function)
    folder = osp.dirname(osp.abspath(out))
    os.makedirs(folder, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f'.{osp.basename(out)}.', dir=folder)
    try:
        staged = osp.join(staging, osp.basename(out))
        result = export(model, task, input_size, norm, staged, dilated_as_dense, log=log,
                        **given)
        for name in sorted(os.listdir(staging)):
            target = osp.join(folder, name)
            if osp.isdir(target) and not osp.islink(target):
                shutil.rmtree(target)
            os.replace(osp.join(staging, name), target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _point_at(result, out)
    log(f'saved {out}')
    return result


def load_exported(fmt: str, path: str) -> Callable[[torch.Tensor], List[torch.Tensor]]:
    """A file written by ``export_model`` in a format this machine runs (executorch with
    XNNPACK, onnx, openvino, torchscript), as a function of a pixel batch shaped like the file's
    input, returning the outputs as tensors."""
    if fmt == 'executorch':
        from .executorch_export import load_pte
        return load_pte(path)
    if fmt == 'onnx':
        from .onnx_export import onnxruntime_session
        session = onnxruntime_session(path, torch.get_num_threads(), spin=False)
        name = session.get_inputs()[0].name
        return lambda x: [torch.from_numpy(o) for o in session.run(None, {name: x.numpy()})]
    if fmt == 'openvino':
        from .openvino_export import compile_openvino, run_openvino
        compiled = compile_openvino(path, torch.get_num_threads())
        return lambda x: [torch.from_numpy(o) for o in run_openvino(compiled, x.numpy())]
    if fmt == 'torchscript':
        from .runtime import load_torchscript
        module = load_torchscript(path)

        def run(x: torch.Tensor) -> List[torch.Tensor]:
            with torch.no_grad():
                out = module(x)
            return list(out) if isinstance(out, (tuple, list)) else [out]
        return run
    raise ExportError(f'--format {fmt} files cannot be run here')


def _point_at(result, out: str) -> None:
    """Replace the staging path in a result (and its Core ML or int8 report) by the final
    one."""
    for holder in (result, getattr(result, 'report', None), getattr(result, 'int8', None)):
        if holder is not None and hasattr(holder, 'path'):
            holder.path = out


__all__ = ['FORMATS', 'Format', 'check_request', 'export_model', 'load_exported', 'option_flag']
