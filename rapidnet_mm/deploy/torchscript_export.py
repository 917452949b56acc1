"""TorchScript export of the same export module as ONNX (mean subtracted in the graph, 1/std
folded into the first conv): the deploy form for PyTorch/libtorch on a CPU or GPU server.

The file holds the frozen trace (portable). ``load_torchscript`` (or
``torch.jit.optimize_for_inference`` after ``torch.jit.load``) adds the oneDNN weight prepacking
on CPU, which is where most of the CPU speed-up over eager PyTorch comes from.
"""
import json
from typing import List

import torch

from .comparison import as_list
from .export_module import ExportError
from .pipeline import Exporter, Runner
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


class TorchScriptExporter(Exporter):
    """``--format torchscript``: the frozen trace, saved with its metadata, reloaded, optimised
    for inference and compared with PyTorch. The module takes ``image`` (float32 Nx3xHxW pixel
    values 0-255 in the model's channel order) and returns the logits, or a tuple of the
    ``feat_s4`` ... ``feat_s32`` maps."""
    kind = 'TorchScript'
    runner = 'TorchScript (loaded, optimised)'

    def write(self, path: str) -> None:
        frozen = freeze_torchscript(self.module, self.example)
        metadata = dict(task=self.task, outputs=self.names, input_size=list(self.input_size),
                        input=f'image: float32 Nx3xHxW pixels 0-255, {self.norm.channel_order}',
                        mean=list(self.norm.mean), std=list(self.norm.std),
                        dilated_as_dense=self.dilated_as_dense)
        torch.jit.save(frozen, path, _extra_files={METADATA_FILE: json.dumps(metadata)})

    @classmethod
    def load(cls, path: str) -> Runner:
        module = load_torchscript(path)

        def run(x: torch.Tensor) -> List[torch.Tensor]:
            with torch.no_grad():
                return as_list(module(x))
        return run
