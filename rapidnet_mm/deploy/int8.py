"""Static int8 (``--quantize int8``) of the formats that offer it (ExecuTorch, ONNX, OpenVINO):
calibration images, the agreement of the int8 file with the fp32 model, its floor, and the
latency of the int8 file against the fp32 one in the same run.

Each runtime quantizes with its own tool (``executorch_export``: PT2E with the XNNPACK quantizer;
``onnx_export``: ONNX Runtime's QDQ ``quantize_static``; ``openvino_export``: NNCF): weights
symmetric int8 per output channel, activations int8 per tensor, calibrated on the calibration
images (``--calib DIR``, or by default the photographs of :mod:`.photos`, several views each).

Agreement is measured on images the quantizer did not see, from the same source: the calibration
images mirrored left-right (at most :data:`MAX_EVALUATION` of them). Classifiers: top-1 agreement
and logit PSNR; backbones: PSNR per output; segmentors: the share of pixels whose class (argmax)
is the same, and logit PSNR. The report names the CPU it measured on (:mod:`.cpu_features`):
int8 kernels differ by instruction set, so a figure holds for that kind of CPU.
"""
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import torch

from .cpu_features import cpu_features
from .comparison import as_list, psnr, reference_outputs
from .export_module import ExportError, option_flag
from .normalization import InputNormalization
from .photos import PHOTOS, sample_images, to_batch

QUANTIZE = ('int8', )
# The options of --quantize int8, by their keyword names, in every format that offers it;
# --quantize first.
INT8_OPTIONS = ('quantize', 'calib', 'min_psnr', 'min_pixel_agreement', 'min_top1_agreement')
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')
# Floors (docs/deployment.md "int8", how they were derived): RapidNet-Ti trained on digits,
# quantized well, agrees on 95-100% of the top-1 classes at 30-41 dB logit PSNR; int8 weights that
# saturated int16 sums (a 5.85-point top-1 drop on held-out digits) agreed on 75% at 20.4 dB; wrong
# weight scales give well below 10 dB.
DEFAULT_MIN_PSNR = 25.0
DEFAULT_MIN_TOP1_AGREEMENT = 0.8
DEFAULT_MIN_PIXEL_AGREEMENT = 0.9
LATENCY_WARMUP, LATENCY_RUNS = 3, 20
MAX_CALIBRATION = 100  # images taken from --calib, spread over the sorted list
MAX_EVALUATION = 24  # calibration images that agreement is measured on, mirrored

Runner = Callable[[torch.Tensor], List[torch.Tensor]]


def calibration_files(folder: str) -> List[str]:
    """The calibration images under ``folder`` (subfolders included, so an ImageNet-style
    training folder works): all of them, sorted, or :data:`MAX_CALIBRATION` spread evenly over
    that list; each checked to decode.

    Raises:
        ExportError: not a folder, no image in it, or an image that cannot be read.
    """
    from PIL import Image
    if not osp.isdir(folder):
        raise ExportError(f'--calib {folder!r} is not a folder; give a folder of calibration '
                          'images, or drop --calib to use the photographs the packages ship')
    files = sorted(osp.join(d, n) for d, _, names in os.walk(folder) for n in names
                   if n.lower().endswith(IMAGE_SUFFIXES))
    if not files:
        raise ExportError(f'--calib {folder!r} holds no image ({"/".join(IMAGE_SUFFIXES)}); add '
                          'a few dozen images like those the model will see, or drop --calib')
    if len(files) > MAX_CALIBRATION:
        files = [files[i * len(files) // MAX_CALIBRATION] for i in range(MAX_CALIBRATION)]
    for path in files:
        try:
            with Image.open(path) as image:
                image.verify()
        except Exception as err:  # noqa: BLE001 - PIL raises many kinds for a bad file
            raise ExportError(f'--calib: {path} is not a readable image ({err}); remove it or '
                              'replace it') from None
    return files


def check_request(options: Dict[str, object]) -> None:
    """Refuse int8 options (keywords of :data:`INT8_OPTIONS`; None or absent: not given) that
    cannot work, before a model is built."""
    quantize = options.get('quantize')
    if quantize is None:
        given = [option_flag(name) for name in INT8_OPTIONS[1:]
                 if options.get(name) is not None]
        if given:
            raise ExportError(f'{" and ".join(given)} is an option of --quantize int8: add '
                              f'--quantize int8 or drop {" and ".join(given)}')
        return
    if quantize not in QUANTIZE:
        raise ExportError(f'unknown --quantize {quantize!r}; choose one of {QUANTIZE}')
    for name in ('min_pixel_agreement', 'min_top1_agreement'):
        value = options.get(name)
        if value is not None and not 0 <= value <= 1:
            raise ExportError(f'{option_flag(name)} {value}: give a fraction between 0 and 1')
    if options.get('calib') is not None:
        calibration_files(options['calib'])


def calibration_images(calib: Optional[str], input_size: Sequence[int],
                       channel_order: str) -> torch.Tensor:
    """The calibration batch (Nx3xHxW pixels 0-255 in ``channel_order``): every image of
    ``calib`` resized whole to ``input_size``, or by default every view of every photograph of
    :data:`~.photos.PHOTOS`."""
    if calib is None:
        return sample_images(input_size, channel_order, tuple(PHOTOS))
    from PIL import Image
    images = []
    for path in calibration_files(calib):
        with Image.open(path) as image:
            images.append(image.convert('RGB'))
    return to_batch(images, input_size, channel_order)


def evaluation_images(calibration: torch.Tensor) -> torch.Tensor:
    """The images agreement is measured on: the calibration images (at most
    :data:`MAX_EVALUATION`, spread over them) mirrored left-right."""
    count = min(len(calibration), MAX_EVALUATION)
    chosen = [i * len(calibration) // count for i in range(count)]
    return calibration[chosen].flip(3)


def class_map(logits: torch.Tensor) -> torch.Tensor:
    """Per-pixel class of (N, C, H, W) segmentation logits."""
    return logits.argmax(1)


@dataclass
class Int8Report:
    """An int8 file against the fp32 model.

    Attributes:
        path: The int8 file.
        runner: The runtime that ran both files.
        task: 'classifier', 'backbone' or 'segmentor'.
        names: Output names.
        images: How many evaluation images.
        calibration: How many calibration images, and from where.
        bytes_fp32, bytes_int8: File sizes (weights included).
        ms_fp32, ms_int8: Median batch-1 latency of each file, timed interleaved in this run.
        psnr: Per output, PSNR (dB) of the int8 file against the fp32 PyTorch model.
        top1_agreement: Classifiers: share of images with the same top-1 class.
        pixel_agreement: Segmentors: share of pixels with the same class.
        floor: What was required, in words.
        cpu: The CPU both files ran on, with its int8-relevant features.
        notes: The runtime's own lines about its scheme on this CPU.
    """
    path: str
    runner: str
    task: str
    names: List[str]
    images: int
    calibration: str
    bytes_fp32: int
    bytes_int8: int
    ms_fp32: float
    ms_int8: float
    psnr: List[float]
    top1_agreement: Optional[float] = None
    pixel_agreement: Optional[float] = None
    floor: str = ''
    cpu: str = ''
    notes: List[str] = field(default_factory=list)

    def format(self) -> str:
        lines = [f'  int8 ({self.runner}), calibrated on {self.calibration}; against fp32 on '
                 f'{self.images} of them mirrored, on {self.cpu}:']
        if self.top1_agreement is not None:
            lines.append(f'    top-1 agreement {100 * self.top1_agreement:.1f}%')
        if self.pixel_agreement is not None:
            lines.append(f'    class-map pixel agreement {100 * self.pixel_agreement:.2f}%')
        lines.append('    PSNR ' + ', '.join(f'{n} {p:.1f} dB' for n, p in
                                              zip(self.names, self.psnr)))
        lines.append(f'    size {self.bytes_int8 / 1e6:.2f} MB (fp32 {self.bytes_fp32 / 1e6:.2f} '
                     f'MB, {self.bytes_fp32 / max(self.bytes_int8, 1):.2f}x smaller)')
        lines.append(f'    latency batch 1, median of {LATENCY_RUNS}, interleaved: int8 '
                     f'{self.ms_int8:.2f} ms, fp32 {self.ms_fp32:.2f} ms '
                     f'({self.ms_fp32 / self.ms_int8:.2f}x)')
        if self.ms_int8 > self.ms_fp32:
            lines.append(f'    int8 ran slower than fp32 on this CPU ({self.ms_int8:.2f} against '
                         f'{self.ms_fp32:.2f} ms): the file saves size, not time, here')
        lines.extend(f'    {note}' for note in self.notes)
        return '\n'.join(lines)


def agreement(task: str, reference: Sequence[List[torch.Tensor]],
              outputs: Sequence[List[torch.Tensor]]) -> Dict[str, object]:
    """PSNR per output over all images, and top-1 (classifier) or pixel (segmentor) agreement.

    Args:
        task: The export task.
        reference: Per image, the fp32 model's outputs.
        outputs: Per image, the int8 file's outputs.
    """
    per_output = list(zip(*reference)), list(zip(*outputs))
    scores = [psnr(torch.cat(r), torch.cat(o)) for r, o in zip(*per_output)]
    result: Dict[str, object] = dict(psnr=scores)
    ref, got = torch.cat(per_output[0][0]), torch.cat(per_output[1][0])
    if task == 'classifier':
        result['top1_agreement'] = (ref.argmax(1) == got.argmax(1)).float().mean().item()
    elif task == 'segmentor':
        result['pixel_agreement'] = (class_map(ref) == class_map(got)).float().mean().item()
    return result


def check_floor(report: Int8Report, min_psnr: Optional[float],
                min_pixel_agreement: Optional[float],
                min_top1_agreement: Optional[float] = None) -> None:
    """Raise ExportError when the int8 file is below the agreement floor: the pixel agreement
    for segmentors; the lowest output PSNR for backbones; both the logit PSNR and the top-1
    agreement for classifiers."""
    def refuse(what: str, floor: str, option: str) -> None:
        raise ExportError(f'the int8 file {what}, below the floor of {floor} (see above): '
                          'calibrate on images like the deployment data (--calib DIR), or '
                          f'lower {option} if this is acceptable')

    if report.task == 'segmentor':
        floor = (DEFAULT_MIN_PIXEL_AGREEMENT if min_pixel_agreement is None
                 else min_pixel_agreement)
        report.floor = f'pixel agreement >= {100 * floor:g}%'
        if not report.pixel_agreement >= floor:
            refuse(f'agrees with fp32 on {100 * report.pixel_agreement:.2f}% of pixels',
                   f'{100 * floor:g}%', '--min-pixel-agreement')
        return
    floor = DEFAULT_MIN_PSNR if min_psnr is None else min_psnr
    top1 = DEFAULT_MIN_TOP1_AGREEMENT if min_top1_agreement is None else min_top1_agreement
    report.floor = f'PSNR >= {floor:g} dB'
    if report.task == 'classifier':
        report.floor += f', top-1 agreement >= {100 * top1:g}%'
    worst = min(report.psnr)
    if not worst >= floor:  # also catches NaN
        refuse(f'is {worst:.1f} dB PSNR from the fp32 model', f'{floor:g} dB', '--min-psnr')
    if report.task == 'classifier' and not report.top1_agreement >= top1:
        refuse(f'keeps the top-1 class of fp32 on {100 * report.top1_agreement:.1f}% of the '
               'images', f'{100 * top1:g}%', '--min-top1-agreement')


def median_latencies(run_fp32: Callable[[], object], run_int8: Callable[[], object]) -> tuple:
    """Median batch-1 milliseconds of both, timed interleaved in this process."""
    from ..timing import time_interleaved
    timed = time_interleaved(dict(fp32=run_fp32, int8=run_int8), LATENCY_WARMUP, LATENCY_RUNS)
    return timed['fp32'].median_ms, timed['int8'].median_ms


def file_bytes(path: str) -> int:
    """A file's size, with the ``.bin`` beside an OpenVINO ``.xml``."""
    size = osp.getsize(path)
    weights = osp.splitext(path)[0] + '.bin'
    if path.endswith('.xml') and osp.exists(weights):
        size += osp.getsize(weights)
    return size


def evaluate_int8(model: torch.nn.Module, task: str, norm: InputNormalization,
                  names: List[str], runner: str, fp32_path: str, int8_path: str,
                  run_fp32: Runner, run_int8: Runner, calibration: torch.Tensor,
                  calib: Optional[str], log: Callable[[str], None],
                  min_psnr: Optional[float] = None,
                  min_pixel_agreement: Optional[float] = None,
                  min_top1_agreement: Optional[float] = None,
                  notes: Sequence[str] = ()) -> Int8Report:
    """Measure an int8 file against the fp32 model and its fp32 file, log it, and apply the
    floor.

    Args:
        model: The PyTorch model (the reference).
        task: The export task.
        norm: The model's input normalisation.
        names: Output names.
        runner: The runtime's name for people.
        fp32_path, int8_path: The two files (for their sizes).
        run_fp32, run_int8: Each file's outputs for a 1x3xHxW pixel tensor.
        calibration: The calibration images (:func:`calibration_images`).
        calib: Where they came from (``--calib``; None: the packaged photographs).
        log: Progress printer.
        min_psnr, min_pixel_agreement, min_top1_agreement: The floor (None: the defaults).
        notes: The runtime's lines about its scheme on this CPU, for the report.

    Raises:
        ExportError: the int8 file is below the floor.
    """
    images = evaluation_images(calibration)
    reference, outputs = [], []
    for i in range(len(images)):
        image = images[i:i + 1]
        reference.append(reference_outputs(model, task, image, norm))
        outputs.append([torch.as_tensor(o) for o in as_list(run_int8(image))])
    scores = agreement(task, reference, outputs)
    image = images[:1]
    ms_fp32, ms_int8 = median_latencies(lambda: run_fp32(image), lambda: run_int8(image))
    report = Int8Report(int8_path, runner, task, names, len(images),
                        describe_calibration(calib, len(calibration)), file_bytes(fp32_path),
                        file_bytes(int8_path), ms_fp32, ms_int8, cpu=cpu_features().describe(),
                        notes=list(notes), **scores)
    log(report.format())
    check_floor(report, min_psnr, min_pixel_agreement, min_top1_agreement)
    log(f'    floor {report.floor}: passed')
    return report


def describe_calibration(calib: Optional[str], count: int) -> str:
    """'12 images of DIR' or '12 views of the packaged photographs'."""
    if calib is None:
        return f'{count} views of {len(PHOTOS)} packaged photographs'
    return f'{count} images of {calib}'


__all__ = ['DEFAULT_MIN_PIXEL_AGREEMENT', 'DEFAULT_MIN_PSNR', 'DEFAULT_MIN_TOP1_AGREEMENT',
           'INT8_OPTIONS', 'QUANTIZE', 'Int8Report', 'calibration_images', 'check_request',
           'evaluate_int8', 'evaluation_images']
