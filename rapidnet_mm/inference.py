"""Inference on one's own images for classification, detection and segmentation configs alike,
through the libraries' inferencers and visualizers (``tools/infer.py``).

The config's ``default_scope`` picks the inferencer: mmpretrain's
``ImageClassificationInferencer``, mmdet's ``DetInferencer`` or mmseg's ``MMSegInferencer``. What
is ours: reading the weights file in either layout (the authors' files are converted in memory by
:mod:`rapidnet_mm.checkpoints`), class names and colours for configs whose datasets have none
that fit the model (synthetic data), top-5 drawing for classification, a legend for
segmentation, and one output naming (``NAME.png`` and ``NAME.json`` per image).
"""
import json
import os
import os.path as osp
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config

from .checkpoints.common import CheckpointLayoutError
from .checkpoints.hub import CheckpointDownloadError
from .checkpoints.loading import (CheckpointWeights, load_into_model, read_checkpoint,
                                  to_our_layout)
from .errors import RapidNetError
from .run_config import load_config

TASKS = {'mmpretrain': 'classification', 'mmdet': 'detection', 'mmseg': 'segmentation'}
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
TOPK = 5
# The segmentation legend (:func:`draw_segmentation_legend`), in pixels: at most LEGEND_ROWS
# classes, one per row of LEGEND_ROW, after a LEGEND_MARGIN; swatches of LEGEND_SWATCH.
LEGEND_ROWS = 16
LEGEND_ROW = 18
LEGEND_MARGIN = 6
LEGEND_SWATCH = 12


class InferenceError(RapidNetError, ValueError):
    """Bad input to :func:`run_inference` (image, checkpoint, device); one line for the user."""


def find_images(inputs: Sequence[str]) -> List[str]:
    """Image files from a list of files and folders (a folder's images sorted by name).

    Raises:
        InferenceError: a path that does not exist, a folder without images, or two images with
            the same name (their outputs would overwrite each other).
    """
    images: List[str] = []
    for path in inputs:
        if osp.isdir(path):
            found = sorted(osp.join(path, n) for n in os.listdir(path)
                           if n.lower().endswith(IMAGE_EXTENSIONS))
            if not found:
                raise InferenceError(f'no images ({", ".join(IMAGE_EXTENSIONS)}) in {path}')
            images += found
        elif osp.isfile(path):
            images.append(path)
        else:
            raise InferenceError(f'image not found: {path}')
    stems: Dict[str, str] = {}
    for image in images:
        stem = osp.splitext(osp.basename(image))[0]
        if stem in stems:
            raise InferenceError(f'{stems[stem]} and {image} would both be written as {stem}.png '
                                 '/ .json; run them separately or rename one')
        stems[stem] = image
    return images


def resolve_device(device: Optional[str]) -> str:
    """'cpu', 'cuda' or 'cuda:<index>'; None picks CUDA when available. Asking for CUDA without
    it is an error."""
    if device is None:
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    if device != 'cpu' and device.split(':')[0] != 'cuda':
        raise InferenceError(f"--device must be 'cpu' or 'cuda[:i]', got {device!r}")
    if device != 'cpu' and not torch.cuda.is_available():
        raise InferenceError(f'--device {device}, but this PyTorch sees no CUDA device; run with '
                             '--device cpu')
    return device


def _read_weights(path: str, weights: str = 'ema') -> CheckpointWeights:
    """:func:`~rapidnet_mm.checkpoints.loading.read_checkpoint` and
    :func:`~rapidnet_mm.checkpoints.loading.to_our_layout` of ``path``, their errors as
    :class:`InferenceError`."""
    try:
        return to_our_layout(read_checkpoint(path), weights=weights)
    except (FileNotFoundError, CheckpointDownloadError) as err:
        raise InferenceError(str(err)) from None
    except CheckpointLayoutError as err:
        raise InferenceError(f'{path}: {err}') from None


def model_num_classes(task: str, model_cfg) -> Optional[int]:
    """The class count of a model config (None where it has none we know)."""
    head = {'classification': ('head', ), 'detection': ('roi_head', 'bbox_head'),
            'segmentation': ('decode_head', )}[task]
    node = model_cfg
    for key in head:
        node = node.get(key) if isinstance(node, dict) else None
    return node.get('num_classes') if isinstance(node, dict) else None


def config_metainfo(cfg: Config) -> dict:
    """The class names and palette the config's test dataset declares (its class's METAINFO
    updated with the config's ``metainfo``), without reading any data."""
    import importlib
    dataset = cfg.get('test_dataloader', {}).get('dataset')
    while isinstance(dataset, dict) and isinstance(dataset.get('dataset'), dict):
        dataset = dataset['dataset']  # wrappers (RepeatDataset, ...)
    if not isinstance(dataset, dict) or 'type' not in dataset:
        return {}
    registry = importlib.import_module(f'{cfg.default_scope}.registry').DATASETS
    dataset_class = registry.get(dataset['type'])
    if dataset_class is None or not hasattr(dataset_class, '_load_metainfo'):
        return {}
    return dataset_class._load_metainfo(dataset.get('metainfo'))


def distinct_palette(num_classes: int) -> List[Tuple[int, int, int]]:
    """Fixed, well-separated RGB colours (golden-ratio hues) for classes without a palette."""
    import colorsys
    return [tuple(int(255 * c) for c in colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.75, 0.95))
            for i in range(num_classes)]


def resolve_dataset_meta(task: str, cfg: Config, checkpoint_meta: dict) -> Tuple[dict, List[str]]:
    """Class names and palette for drawing: the checkpoint's ``dataset_meta`` (what mmengine saves
    after training) or ``CLASSES``/``PALETTE`` (mmdet 2.x / mmseg 0.x files, the authors'), else
    the config's test dataset. Names or colours whose count differs from
    the model's classes (e.g. a synthetic dataset's model on ImageNet's 1000 names) are replaced
    by ``class0``... and distinct colours, and the returned notes say so.
    """
    notes: List[str] = []
    saved = checkpoint_meta.get('dataset_meta') or {}
    if not saved and checkpoint_meta.get('CLASSES'):
        saved = dict(classes=checkpoint_meta['CLASSES'], palette=checkpoint_meta.get('PALETTE'))
    meta = {k.lower(): v for k, v in saved.items()}
    origin = 'the checkpoint'
    if not meta.get('classes'):
        meta = {k.lower(): v for k, v in config_metainfo(cfg).items()}
        origin = 'the config\'s test dataset'
    num_classes = model_num_classes(task, cfg.model)
    classes = list(meta.get('classes') or [])
    if num_classes is not None and len(classes) != num_classes:
        notes.append(f'{origin} names {len(classes)} classes, the model has {num_classes}: '
                     f'drawing them as class0..class{num_classes - 1}')
        classes = [f'class{i}' for i in range(num_classes)]
    palette = meta.get('palette')
    if not isinstance(palette, (list, tuple)) or len(palette) != len(classes):
        palette = distinct_palette(len(classes))
    meta.update(classes=tuple(classes), palette=[tuple(int(c) for c in p) for p in palette])
    return meta, notes


@dataclass
class Predictor:
    """An inferencer ready to run, and what :func:`run_inference` needs to write its results."""
    task: str
    inferencer: object
    predict: Callable[[str, str], dict]  # (image, out_dir) -> JSON-ready dict; writes the PNG
    notes: List[str]


def _classification(cfg: Config, loaded: CheckpointWeights, meta: dict, device: str,
                    path: str) -> Tuple[object, Callable]:
    from mmengine.registry import DefaultScope
    from mmpretrain.apis import ImageClassificationInferencer
    from mmpretrain.registry import MODELS

    class TopKInferencer(ImageClassificationInferencer):
        """mmpretrain's inferencer drawing the top-k classes: its visualizer draws every index
        of ``pred_label``, where the classifier leaves only the top-1."""

        def visualize(self, ori_inputs, preds, **kwargs):
            topk = []
            for sample in preds:
                sample = sample.clone()
                sample.set_pred_label(sample.pred_score.topk(min(TOPK, len(sample.pred_score)))
                                      .indices)
                topk.append(sample)
            return super().visualize(ori_inputs, topk, **kwargs)

    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    load_into_model(model, loaded, path)
    model._dataset_meta = meta  # where mmpretrain's inferencer looks for class names
    model._config = cfg
    inferencer = TopKInferencer(model, pretrained=False, device=device,
                                classes=list(meta['classes']))
    # run_inference prints one line per image; mmpretrain's per-call bar would interleave with it
    # (DetInferencer and MMSegInferencer have show_progress for this, mmpretrain a module flag)
    import mmpretrain.utils.progress
    mmpretrain.utils.progress.disable_progress_bar = True

    def predict(image: str, out_dir: str) -> dict:
        result = inferencer(image, show_dir=out_dir)[0]
        scores = torch.as_tensor(result['pred_scores'])
        values, labels = scores.topk(min(TOPK, len(scores)))
        return dict(pred_label=int(result['pred_label']), pred_score=float(result['pred_score']),
                    pred_class=meta['classes'][int(result['pred_label'])],
                    topk=[dict(label=int(i), class_name=meta['classes'][int(i)], score=float(v))
                          for v, i in zip(values, labels)],
                    pred_scores=[float(s) for s in scores])

    return inferencer, predict


def _weights_in_memory(base: type, loaded: CheckpointWeights, meta: dict, path: str) -> type:
    """``base`` (an mmengine ``BaseInferencer``) taking its weights and ``dataset_meta`` from
    memory: ``_load_weights_to_model`` is the hook mmengine provides for that."""

    class Inferencer(base):

        def _load_weights_to_model(self, model, checkpoint, cfg):
            load_into_model(model, loaded, path)
            model.dataset_meta = dict(meta)

    Inferencer.__name__ = base.__name__
    return Inferencer


def _write_png(visualization: np.ndarray, image: str, out_dir: str) -> None:
    import mmcv
    name = osp.splitext(osp.basename(image))[0] + '.png'
    mmcv.imwrite(np.ascontiguousarray(visualization[..., ::-1]), osp.join(out_dir, name))


def _detection(cfg: Config, loaded: CheckpointWeights, meta: dict, device: str, path: str,
               score_thr: float) -> Tuple[object, Callable]:
    from mmdet.apis import DetInferencer
    inferencer = _weights_in_memory(DetInferencer, loaded, meta, path)(
        model=cfg, weights=None, device=device, show_progress=False)

    def predict(image: str, out_dir: str) -> dict:
        result = inferencer(image, return_vis=True, pred_score_thr=score_thr,
                            no_save_vis=True, no_save_pred=True)
        _write_png(result['visualization'][0], image, out_dir)
        pred = result['predictions'][0]
        pred['class_names'] = [meta['classes'][i] for i in pred['labels']]
        pred['drawn_score_thr'] = score_thr
        return pred

    return inferencer, predict


def draw_segmentation_legend(drawn: np.ndarray, sem_seg: np.ndarray, classes: Sequence[str],
                             palette: Sequence[Tuple[int, int, int]]) -> np.ndarray:
    """``drawn`` with a legend on its right: for every class in ``sem_seg``, largest first, a
    swatch of its colour, its name and its share of the pixels.

    mmseg's ``SegLocalVisualizer`` only writes each name on its region (``with_labels``), which
    small regions and many classes make hard to read, and it has no legend.

    Args:
        drawn: The drawing (RGB, height x width x 3, uint8).
        sem_seg: The class index of every pixel (any shape).
        classes: Class names, by index.
        palette: RGB colours, by index, as the drawing uses them.

    Returns:
        A new RGB image: ``drawn`` at the top left, the legend on white to its right, and white
        below ``drawn`` if the legend is the taller.
    """
    import cv2
    labels, counts = np.unique(np.asarray(sem_seg), return_counts=True)
    order = np.argsort(-counts, kind='stable')
    total = counts.sum()
    rows = [(tuple(int(c) for c in palette[labels[i]]),
             f'{classes[labels[i]]} {100 * counts[i] / total:.1f}%')
            for i in order[:LEGEND_ROWS]]
    if len(order) > LEGEND_ROWS:
        rest = counts[order[LEGEND_ROWS:]].sum()
        rows.append((None, f'+{len(order) - LEGEND_ROWS} more {100 * rest / total:.1f}%'))
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.4
    text_x = 2 * LEGEND_MARGIN + LEGEND_SWATCH
    width = text_x + max(cv2.getTextSize(text, font, scale, 1)[0][0] for _, text in rows) \
        + LEGEND_MARGIN
    height, drawn_width = drawn.shape[:2]
    out = np.full((max(height, 2 * LEGEND_MARGIN + len(rows) * LEGEND_ROW), drawn_width + width, 3),
                  255, np.uint8)
    out[:height, :drawn_width] = drawn
    for k, (colour, text) in enumerate(rows):
        top = LEGEND_MARGIN + k * LEGEND_ROW + (LEGEND_ROW - LEGEND_SWATCH) // 2
        left = drawn_width + LEGEND_MARGIN
        if colour is not None:
            out[top:top + LEGEND_SWATCH, left:left + LEGEND_SWATCH] = colour
            cv2.rectangle(out, (left, top), (left + LEGEND_SWATCH - 1, top + LEGEND_SWATCH - 1),
                          (0, 0, 0), 1)
        baseline = LEGEND_MARGIN + k * LEGEND_ROW + LEGEND_ROW // 2 + 4
        cv2.putText(out, text, (drawn_width + text_x, baseline), font, scale, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return out


def _segmentation(cfg: Config, loaded: CheckpointWeights, meta: dict, device: str,
                  path: str) -> Tuple[object, Callable]:
    from mmseg.apis import MMSegInferencer
    inferencer = _weights_in_memory(MMSegInferencer, loaded, meta, path)(
        model=cfg, weights=None, device=device)
    inferencer.show_progress = False

    def predict(image: str, out_dir: str) -> dict:
        result = inferencer(image, return_vis=True)  # single image: not wrapped in lists
        sem_seg = np.asarray(result['predictions'])
        _write_png(draw_segmentation_legend(result['visualization'], sem_seg, meta['classes'],
                                            meta['palette']), image, out_dir)
        labels, counts = np.unique(sem_seg, return_counts=True)
        return dict(classes=list(meta['classes']),
                    pixels_per_class={meta['classes'][int(i)]: int(n)
                                      for i, n in zip(labels, counts)},
                    sem_seg=sem_seg.tolist())

    return inferencer, predict


def build_predictor(config: str, checkpoint: str, device: Optional[str] = None,
                    cfg_options: Optional[dict] = None, weights: str = 'ema',
                    score_thr: float = 0.3) -> Predictor:
    """Load the config and the weights and build the library's inferencer.

    Args:
        config: A classification, detection or segmentation config (``default_scope`` picks).
        checkpoint: Our (mmengine) checkpoint or the authors' original file: a local path or a
            URL (a Hugging Face Hub file is downloaded into huggingface_hub's cache).
        device: 'cpu', 'cuda' or None (CUDA when available).
        cfg_options: Config overrides (``--cfg-options``).
        weights: 'ema' or 'raw' for the authors' ImageNet files.
        score_thr: Detection: the lowest score drawn (all predictions go to the JSON).

    Raises:
        InferenceError: a problem with the input, in one line.
        rapidnet_mm.config.ConfigError: a missing config or a scope of no library we serve.
    """
    device = resolve_device(device)
    cfg = load_config(config, cfg_options, launcher='none', work_dir=None)
    task = TASKS[cfg.default_scope]
    loaded = _read_weights(checkpoint, weights)
    meta, notes = resolve_dataset_meta(task, cfg, loaded.meta)
    notes.insert(0, f'{task} config, weights from {loaded.source}')
    cfg.model.pop('pretrained', None)
    try:
        if task == 'classification':
            inferencer, predict = _classification(cfg, loaded, meta, device, checkpoint)
        elif task == 'detection':
            inferencer, predict = _detection(cfg, loaded, meta, device, checkpoint, score_thr)
        else:
            inferencer, predict = _segmentation(cfg, loaded, meta, device, checkpoint)
    except CheckpointLayoutError as err:
        raise InferenceError(str(err)) from None
    return Predictor(task=task, inferencer=inferencer, predict=predict, notes=notes)


def run_inference(predictor: Predictor, images: Sequence[str], out_dir: str,
                  log: Callable[[str], None] = print) -> List[Tuple[str, str]]:
    """Predict each image, write ``NAME.png`` (drawn by the library's visualizer) and
    ``NAME.json`` (the raw predictions) to ``out_dir``, and log progress.

    Returns:
        ``(png, json)`` paths, one pair per image.
    """
    import mmcv
    if osp.exists(out_dir) and not osp.isdir(out_dir):
        raise InferenceError(f'--out-dir {out_dir} is a file; name a folder')
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for i, image in enumerate(images, 1):
        try:
            readable = mmcv.imread(image) is not None
        except Exception:  # noqa: BLE001  (a decoder's failure means the same to the user)
            readable = False
        if not readable:
            raise InferenceError(f'cannot read {image} as an image')
        pred = predictor.predict(image, out_dir)
        stem = osp.splitext(osp.basename(image))[0]
        png, json_path = osp.join(out_dir, stem + '.png'), osp.join(out_dir, stem + '.json')
        if not osp.isfile(png):
            raise RuntimeError(f'the visualizer wrote no {png}')
        with open(json_path, 'w') as f:
            json.dump(dict(image=image, task=predictor.task, **pred), f)
        log(f'[{i}/{len(images)}] {image} -> {png}, {json_path}')
        written.append((png, json_path))
    return written


__all__ = ['InferenceError', 'Predictor', 'TASKS', 'build_predictor', 'find_images',
           'resolve_dataset_meta', 'resolve_device', 'run_inference']
