"""Held-out top-1 of a classifier exported in fp32 and in static int8 under each CPU runtime:
the accuracy int8 costs on a real model, not only its agreement with fp32
(``tools/misc/digits_int8.py`` measures RapidNet-Ti trained on scikit-learn's digits).

The held-out images are an ImageNet-style folder (``VAL/<class>/<image>``, classes in sorted
order, as mmpretrain's ``CustomDataset`` reads them); each is loaded whole at the export size, the
way the config's test pipeline gives it to the model.
"""
import os
import os.path as osp
import tempfile
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..deploy.comparison import reference_outputs
from ..deploy.cpu_features import cpu_features
from ..deploy.formats import FORMATS, export_model, load_exported
from ..deploy.int8 import IMAGE_SUFFIXES
from ..deploy.normalization import InputNormalization
from ..deploy.photos import to_batch
from ..errors import InputError

INT8_FORMATS = tuple(name for name, spec in FORMATS.items() if spec.int8)
RUNTIME_NAMES = {'executorch': 'ExecuTorch (XNNPACK)', 'onnx': 'ONNX Runtime',
                 'openvino': 'OpenVINO'}


def labelled_images(folder: str, input_size: Sequence[int],
                    channel_order: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """Every image of an ImageNet-style folder as an Nx3xHxW pixel batch, and its class index
    (the subfolders in sorted order).

    Raises:
        InputError: no class folder or no image.
    """
    from PIL import Image
    classes = sorted(d for d in os.listdir(folder) if osp.isdir(osp.join(folder, d)))
    images, labels = [], []
    for index, name in enumerate(classes):
        for file in sorted(os.listdir(osp.join(folder, name))):
            if file.lower().endswith(IMAGE_SUFFIXES):
                with Image.open(osp.join(folder, name, file)) as image:
                    images.append(image.convert('RGB'))
                labels.append(index)
    if not images:
        raise InputError(f'{folder}: no class folders with images (expected CLASS/IMAGE files)')
    return to_batch(images, input_size, channel_order), torch.tensor(labels)


def top1(run: Callable[[torch.Tensor], List[torch.Tensor]], images: torch.Tensor,
         labels: torch.Tensor) -> Tuple[float, torch.Tensor]:
    """Top-1 accuracy (%) of ``run`` (one image at a time) and its predictions."""
    predictions = torch.stack([run(images[i:i + 1])[0].reshape(-1).argmax()
                               for i in range(len(images))])
    return 100 * (predictions == labels).float().mean().item(), predictions


@dataclass
class AccuracyRow:
    """One runtime: held-out top-1 of its fp32 and int8 files, and the share of images whose
    prediction int8 keeps."""
    runtime: str
    fp32: float
    int8: float
    agreement: float

    @property
    def drop(self) -> float:
        return self.fp32 - self.int8


def measure_int8_accuracy(model: nn.Module, norm: InputNormalization, val_folder: str,
                          input_size: Tuple[int, int], calib: Optional[str] = None,
                          formats: Sequence[str] = INT8_FORMATS,
                          log: Callable[[str], None] = print) -> Tuple[float, List[AccuracyRow]]:
    """Export ``model`` in fp32 and int8 to each of ``formats`` and measure held-out top-1.

    Args:
        model: An eval-mode classifier.
        norm: Its input normalisation.
        val_folder: The held-out ImageNet-style folder.
        input_size: The export size (the size the images are given at).
        calib: Calibration folder for int8 (default: the packaged photographs).
        formats: Keys of ``FORMATS`` that offer ``--quantize int8``.
        log: Progress printer (the exporters' reports included).

    Returns:
        The PyTorch model's top-1 and one row per format.
    """
    images, labels = labelled_images(val_folder, input_size, norm.channel_order)
    reference, ref_pred = top1(lambda x: reference_outputs(model, 'classifier', x, norm),
                               images, labels)
    log(f'PyTorch fp32: top-1 {reference:.2f}% on {len(images)} held-out images')
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in formats:
            accuracy = {}
            predictions = {}
            for quantize in (None, 'int8'):
                path = osp.join(tmp, f'{fmt}_{quantize or "fp32"}{FORMATS[fmt].suffix}')
                export_model(model, fmt, 'classifier', input_size, norm, path, log=log,
                             quantize=quantize, calib=calib if quantize else None)
                accuracy[quantize], predictions[quantize] = top1(load_exported(fmt, path),
                                                                 images, labels)
            agree = 100 * (predictions[None] == predictions['int8']).float().mean().item()
            rows.append(AccuracyRow(RUNTIME_NAMES[fmt], accuracy[None], accuracy['int8'], agree))
            log(f'{RUNTIME_NAMES[fmt]}: top-1 fp32 {accuracy[None]:.2f}%, int8 '
                f'{accuracy["int8"]:.2f}%, drop {rows[-1].drop:+.2f} points')
    return reference, rows


def format_accuracy_table(reference: float, rows: Sequence[AccuracyRow], images: int) -> str:
    """The markdown table of :func:`measure_int8_accuracy`."""
    lines = [f'PyTorch fp32 top-1: {reference:.2f}% on {images} held-out images', '',
             '| runtime | top-1 fp32 | top-1 int8 | drop (points) | int8 keeps the fp32 '
             'prediction |', '|---|---|---|---|---|']
    lines += [f'| {r.runtime} | {r.fp32:.2f} | {r.int8:.2f} | {r.drop:.2f} | {r.agreement:.1f}% |'
              for r in rows]
    lines += ['', f'CPU: {cpu_features().describe()}']
    return '\n'.join(lines)
