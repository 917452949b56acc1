"""tools/infer.py on one synthetic image per task (random weights): the drawn PNG and the JSON of
raw predictions, the authors' original classification file giving the converted file's outputs,
class names for models whose config names none that fit, and the one-line errors."""
import importlib.util
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope

from cls_helpers import PYTHON, authors_checkpoint, run_tool
from det_helpers import (DEMO_CONFIG, DET_CONFIGS, build_detector, load_cfg,
                         synthesise_mmdet2_checkpoint)
from original_layout import OriginalRapidNet, randomize_
from tool_helpers import ROOT
from rapidnet_mm.checkpoints import convert_checkpoint
from rapidnet_mm.inference import (LEGEND_MARGIN, LEGEND_ROW, LEGEND_ROWS, LEGEND_SWATCH,
                                   distinct_palette, draw_segmentation_legend)

pytestmark = pytest.mark.core

CLS_CONFIG = osp.join(ROOT, 'configs/cls/rapidnet_ti_in1k.py')
SEG_CONFIG = osp.join(ROOT, 'configs/seg/fpn_rapidnet_ti_ade20k.py')
# the segmentor of a 4-class synthetic dataset, tested at a toy scale
SEG_OPTIONS = ['model.decode_head.num_classes=4',
               'test_dataloader.dataset.pipeline.1.scale=(256,64)']
HEIGHT, WIDTH = 72, 96


def load_tool():
    spec = importlib.util.spec_from_file_location('infer_tool', osp.join(ROOT, 'tools/infer.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def infer(args, capsys):
    """Run tools/infer.py in this process; its stdout."""
    load_tool().main([str(a) for a in args])
    return capsys.readouterr().out


def write_image(path, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 255, (HEIGHT, WIDTH, 3)).astype(np.uint8)
    assert cv2.imwrite(str(path), pixels)
    return path


def read_outputs(out_dir, stem):
    png = cv2.imread(str(out_dir / f'{stem}.png'))
    assert png is not None, f'no {stem}.png'
    with open(out_dir / f'{stem}.json') as f:
        return png, json.load(f)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('infer')
    raw = randomize_(OriginalRapidNet('ti'), seed=21).eval()
    ema = randomize_(OriginalRapidNet('ti'), seed=22).eval()
    with torch.no_grad():  # logits of order 1, so that the softmax scores are not one-hot
        for model in (raw, ema):
            for head in (model.head, model.dist_head):
                head.weight.mul_(1e-5)  # the randomised features reach ~1e5
    authors = authors_checkpoint(raw, ema)
    torch.save(authors, root / 'RapidNet_Ti.pth')
    # what tools/model_converters/convert_official.py writes
    torch.save({'state_dict': convert_checkpoint(authors).state_dict, 'meta': {'arch': 'ti'}},
               root / 'rapidnet_ti_in1k.pth')
    write_image(root / 'street.jpg')
    return root


@pytest.mark.slow
def test_classification_original_file_equals_converted(data, tmp_path, capsys):
    outputs = {}
    for name in ('RapidNet_Ti.pth', 'rapidnet_ti_in1k.pth'):
        out = infer([CLS_CONFIG, data / name, data / 'street.jpg', '--out-dir',
                     tmp_path / name], capsys)
        assert f"-> {tmp_path / name / 'street.png'}, {tmp_path / name / 'street.json'}" in out
        png, outputs[name] = read_outputs(tmp_path / name, 'street')
        assert png.shape == (HEIGHT, WIDTH, 3)  # drawn over the image, at its size
    original, converted = outputs['RapidNet_Ti.pth'], outputs['rapidnet_ti_in1k.pth']
    assert original == converted
    assert original['task'] == 'classification'
    scores = np.array(original['pred_scores'])
    assert scores.shape == (1000, ) and abs(scores.sum() - 1) < 1e-4
    assert 0.001 < scores.max() < 0.999
    top5 = original['topk']
    assert [t['label'] for t in top5] == list(np.argsort(-scores)[:5])
    assert [t['score'] for t in top5] == list(scores[[t['label'] for t in top5]])
    assert top5[0]['label'] == original['pred_label']
    # ImageNet's names, from the config's dataset
    from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
    assert [t['class_name'] for t in top5] == [IMAGENET_CATEGORIES[t['label']] for t in top5]
    assert original['pred_class'] == IMAGENET_CATEGORIES[original['pred_label']]

    # the raw (non-EMA) set on request: other weights, other scores
    infer([CLS_CONFIG, data / 'RapidNet_Ti.pth', data / 'street.jpg', '--out-dir',
           tmp_path / 'raw', '--weights', 'raw'], capsys)
    _, raw = read_outputs(tmp_path / 'raw', 'street')
    assert np.abs(np.array(raw['pred_scores']) - scores).max() > 1e-4


@pytest.mark.slow
def test_detection_draws_and_saves_instances(tmp_path, capsys):
    torch.manual_seed(0)
    model = build_detector(load_cfg(DEMO_CONFIG))
    checkpoint = tmp_path / 'maskrcnn.pth'
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    write_image(tmp_path / 'shapes.png', seed=1)
    out = infer([DEMO_CONFIG, checkpoint, tmp_path / 'shapes.png', '--out-dir', tmp_path / 'out',
                 '--score-thr', '0'], capsys)
    assert 'detection config, weights from an mmengine checkpoint' in out
    png, pred = read_outputs(tmp_path / 'out', 'shapes')
    assert png.shape == (HEIGHT, WIDTH, 3)
    assert pred['task'] == 'detection'
    count = len(pred['labels'])
    assert 0 < count <= 20  # test_cfg.rcnn.max_per_img of the demo config
    assert len(pred['scores']) == len(pred['bboxes']) == len(pred['masks']) == count
    assert all(len(box) == 4 for box in pred['bboxes'])
    assert all(mask['size'] == [HEIGHT, WIDTH] for mask in pred['masks'])  # COCO RLE
    # the names of the demo config's metainfo
    classes = ('circle', 'triangle', 'square')
    assert pred['class_names'] == [classes[i] for i in pred['labels']]
    # boxes were drawn (score threshold 0): the PNG is not the input image
    original = cv2.imread(str(tmp_path / 'shapes.png'))
    assert np.abs(png.astype(int) - original).max() > 100


@pytest.mark.slow
def test_detection_with_the_authors_mmdet2_file(tmp_path, capsys):
    """RapidNet_M_Detection.pth as published (mmdet 2.28 layout, synthesised) gives the
    predictions of its converted copy, with the class names of its own meta."""
    torch.manual_seed(0)
    model = build_detector(load_cfg(DET_CONFIGS['m']))
    ckpt, _ = synthesise_mmdet2_checkpoint(model, seed=3)
    # neck and heads as PyTorch initialises them (random normal heads propose nothing), the
    # FPN's inputs scaled from the randomised backbone's ~1e5 to order 1
    for key, value in model.state_dict().items():
        if not key.startswith('backbone.'):
            ckpt['state_dict'][key] = value * (1e-5 if key.startswith('neck.lateral') else 1)
    torch.save(ckpt, tmp_path / 'RapidNet_M_Detection.pth')
    torch.save({'state_dict': convert_checkpoint(ckpt).state_dict}, tmp_path / 'converted.pth')
    write_image(tmp_path / 'street.jpg', seed=2)
    preds, outs = {}, {}
    for name in ('RapidNet_M_Detection.pth', 'converted.pth'):
        outs[name] = infer([DET_CONFIGS['m'], tmp_path / name, tmp_path / 'street.jpg',
                            '--out-dir', tmp_path / 'out' / name, '--cfg-options',
                            'test_dataloader.dataset.pipeline.1.scale=(96,72)',
                            'model.test_cfg.rcnn.score_thr=0'], capsys)  # random heads
        _, preds[name] = read_outputs(tmp_path / 'out' / name, 'street')
    assert ("weights from the authors' detection checkpoint of RapidNet-m, converted in memory"
            in outs['RapidNet_M_Detection.pth'])
    original, converted = preds['RapidNet_M_Detection.pth'], preds['converted.pth']
    assert len(original['labels']) > 0
    for key in ('labels', 'scores', 'bboxes', 'masks'):
        assert original[key] == converted[key], key
    # names: the authors' meta CLASSES; the converted copy has none, so the config's (COCO)
    assert original['class_names'] == [f'class{i}' for i in original['labels']]
    from mmdet.datasets import CocoDataset
    assert converted['class_names'] == [CocoDataset.METAINFO['classes'][i]
                                        for i in converted['labels']]


@pytest.mark.slow
def test_segmentation_of_a_synthetic_dataset_folder(tmp_path, capsys):
    cfg = load_cfg(SEG_CONFIG)
    cfg.model.backbone.init_cfg = None
    cfg.model.decode_head.num_classes = 4
    from mmseg.registry import MODELS
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    torch.save({'state_dict': model.state_dict()}, tmp_path / 'fpn.pth')
    images = tmp_path / 'images'
    images.mkdir()
    for i in range(2):
        write_image(images / f'img{i}.jpg', seed=i)
    out = infer([SEG_CONFIG, tmp_path / 'fpn.pth', images, '--out-dir', tmp_path / 'out',
                 '--cfg-options', *SEG_OPTIONS], capsys)
    # ADE20K's 150 names do not fit a 4-class model: generic names, and the user is told
    assert "names 150 classes, the model has 4: drawing them as class0..class3" in out
    assert '[1/2]' in out and '[2/2]' in out
    for i in range(2):
        png, pred = read_outputs(tmp_path / 'out', f'img{i}')
        assert pred['classes'] == ['class0', 'class1', 'class2', 'class3']
        sem_seg = np.array(pred['sem_seg'])
        assert sem_seg.shape == (HEIGHT, WIDTH) and sem_seg.max() < 4
        counts = {f'class{c}': int((sem_seg == c).sum()) for c in np.unique(sem_seg)}
        assert pred['pixels_per_class'] == counts
        # the drawing at the image's size, and the legend to its right: the classes present,
        # largest first, each with the colour the drawing uses
        assert png.shape[0] >= HEIGHT and png.shape[1] > WIDTH
        palette = distinct_palette(4)
        by_size = sorted(np.unique(sem_seg), key=lambda c: -(sem_seg == c).sum())
        for k, c in enumerate(by_size):
            y, x = swatch_centre(k, WIDTH)
            assert tuple(png[y, x][::-1]) == palette[c], (k, c)  # the PNG is BGR
        y, x = swatch_centre(len(by_size), WIDTH)
        assert y >= png.shape[0] or tuple(png[y, x]) == (255, 255, 255)  # no more rows


def swatch_centre(row, drawn_width):
    """Where :func:`draw_segmentation_legend` puts the middle of row ``row``'s swatch."""
    top = LEGEND_MARGIN + row * LEGEND_ROW + (LEGEND_ROW - LEGEND_SWATCH) // 2
    return top + LEGEND_SWATCH // 2, drawn_width + LEGEND_MARGIN + LEGEND_SWATCH // 2


def test_segmentation_legend_lists_classes_by_share():
    drawn = np.random.default_rng(0).integers(0, 255, (10, 20, 3)).astype(np.uint8)
    sem_seg = np.zeros((10, 20), np.int64)
    sem_seg[:6] = 2  # 120 pixels
    sem_seg[9, :] = 3  # 20
    palette = [(200, 0, 0), (0, 200, 0), (0, 0, 200), (90, 90, 0)]
    out = draw_segmentation_legend(drawn, sem_seg, ['sky', 'road', 'tree', 'car'], palette)
    assert np.array_equal(out[:10, :20], drawn)  # the drawing itself is untouched
    # three rows are taller than the 10-pixel drawing: white below it
    assert out.shape[0] == 2 * LEGEND_MARGIN + 3 * LEGEND_ROW
    assert (out[10:, :20] == 255).all()
    for k, c in enumerate([2, 0, 3]):  # 60%, 30%, 10%
        y, x = swatch_centre(k, 20)
        assert tuple(out[y, x]) == palette[c]
        # the name and share, in black, to the right of the swatch
        text = out[y - 6:y + 6, x + LEGEND_SWATCH:]
        assert (text < 100).any()

    many = np.arange(40).repeat(3).reshape(10, 12)  # 40 classes of 3 pixels
    out = draw_segmentation_legend(np.zeros((10, 12, 3), np.uint8), many,
                                   [f'c{i}' for i in range(40)], distinct_palette(40))
    # LEGEND_ROWS classes, then one line for the other 24 (no swatch)
    assert out.shape[0] == 2 * LEGEND_MARGIN + (LEGEND_ROWS + 1) * LEGEND_ROW
    y, x = swatch_centre(LEGEND_ROWS, 12)
    assert tuple(out[y, x]) == (255, 255, 255)


def test_errors_are_one_line(data, tmp_path, capsys):
    tool = load_tool()

    def error(*args):
        assert tool.main([str(a) for a in args]) == 2
        # from the error line on: mmengine's logger may complain before it about a stream an
        # earlier test's capsys closed
        lines = capsys.readouterr().err.strip().splitlines()
        start = max(i for i, line in enumerate(lines) if line.startswith('error: '))
        return '\n'.join(lines[start:])

    image = data / 'street.jpg'
    ckpt = data / 'rapidnet_ti_in1k.pth'
    assert error(CLS_CONFIG, ckpt, tmp_path / 'nope.jpg') == \
        f"error: image not found: {tmp_path / 'nope.jpg'}"
    assert error(CLS_CONFIG, tmp_path / 'nope.pth', image) == \
        f"error: checkpoint not found: {tmp_path / 'nope.pth'}"
    (tmp_path / 'text.jpg').write_text('not an image')
    assert error(CLS_CONFIG, ckpt, tmp_path / 'text.jpg') == \
        f"error: cannot read {tmp_path / 'text.jpg'} as an image"
    (tmp_path / 'garbage.pth').write_bytes(b'garbage')
    assert error(CLS_CONFIG, tmp_path / 'garbage.pth', image).startswith(
        f"error: {tmp_path / 'garbage.pth'}: cannot read {tmp_path / 'garbage.pth'} as a "
        'PyTorch checkpoint:')
    torch.save({'state_dict': {'conv1.weight': torch.zeros(1), 'fc.bias': torch.zeros(1)}},
               tmp_path / 'resnet.pth')
    message = error(CLS_CONFIG, tmp_path / 'resnet.pth', image)
    assert message.startswith(f"error: {tmp_path / 'resnet.pth'} fits neither layout")
    assert message.splitlines()[1:] == ['  conv1.weight', '  fc.bias']  # the keys, named
    assert error(CLS_CONFIG, ckpt, image, '--out-dir', ckpt) == \
        f'error: --out-dir {ckpt} is a file; name a folder'
    if not torch.cuda.is_available():
        assert error(CLS_CONFIG, ckpt, image, '--device', 'cuda') == (
            'error: --device cuda, but this PyTorch sees no CUDA device; run with --device cpu')


@pytest.mark.slow
def test_command_line_help_and_error():
    result = run_tool([PYTHON, 'tools/infer.py', '--help'])
    assert result.returncode == 0 and 'IMAGE_OR_DIR' in result.stdout
    assert '--device cpu|cuda[:i]' in result.stdout
    result = run_tool([PYTHON, 'tools/infer.py', CLS_CONFIG, 'x.pth', 'missing.jpg'])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ['error: image not found: missing.jpg']
