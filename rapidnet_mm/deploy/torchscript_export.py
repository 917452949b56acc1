"""TorchScript export of the same export module as ONNX (mean subtracted in the graph, 1/std
folded into the first conv): the deploy form for PyTorch/libtorch on a CPU or GPU server.

The file holds the frozen trace (portable). ``load_torchscript`` (or
``torch.jit.optimize_for_inference`` after ``torch.jit.load``) adds the oneDNN weight prepacking
on CPU, which is where most of the CPU speed-up over eager PyTorch comes from.
"""
import json
from typing import Callable, Tuple

import torch
import torch.nn as nn

from .export_module import (ExportedFileCheck, ExportError, as_list, check_exported_file,
                            check_image, prepare_file_export, reference_outputs)
from .normalization import InputNormalization
from .runtime import freeze_torchscript, load_torchscript

METADATA_FILE = 'rapidnet_mm.json'


def read_metadata(path: str) -> dict:
    """What the exporter stored next to the graph: task, output names, input size and the
    normalisation built into the graph."""
    files = {METADATA_FILE: ''}
    torch.jit.load(path, map_location='cpu', _extra_files=files)
    if not files[METADATA_FILE]:
        raise ExportError(f'{path} has no {METADATA_FILE}: not written by '
                          'tools/deployment/export.py --format torchscript')
    return json.loads(files[METADATA_FILE])


def export_torchscript(model: nn.Module, task: str, input_size: Tuple[int, int],
                       norm: InputNormalization, out: str, dilated_as_dense: bool = False,
                       log: Callable[[str], None] = print,
                       rel_tol: float = 1e-4) -> ExportedFileCheck:
    """Check, reparameterise, trace, freeze and save ``model``; reload the file, optimise it for
    inference and compare it with the PyTorch model.

    The module takes ``image``: float32 Nx3xHxW pixel values 0-255 in the model's channel order,
    and returns the logits, or a tuple of the ``feat_s4`` ... ``feat_s32`` maps.

    Raises:
        ExportError: bad settings or model (before tracing), or the reloaded module differing
            from PyTorch by more than ``rel_tol`` of the reference's largest magnitude.
    """
    module, names, params = prepare_file_export(model, task, input_size, norm, dilated_as_dense,
                                                'TorchScript', log)
    frozen = freeze_torchscript(module, torch.zeros(1, 3, *input_size))
    metadata = dict(task=task, outputs=names, input_size=list(input_size),
                    input=f'image: float32 Nx3xHxW pixels 0-255, {norm.channel_order}',
                    mean=list(norm.mean), std=list(norm.std), dilated_as_dense=dilated_as_dense)
    torch.jit.save(frozen, out, _extra_files={METADATA_FILE: json.dumps(metadata)})
    image = check_image(task, input_size, norm)
    ref = reference_outputs(model, task, image, norm)
    with torch.no_grad():
        got = as_list(load_torchscript(out)(image))
    return check_exported_file(out, 'TorchScript (loaded, optimised)', names, ref, got,
                               params, log, rel_tol)
