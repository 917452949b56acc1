"""AlignResize: the authors' ADE20K test resize (keep ratio to fit (2048, 512), then each side
rounded up to a multiple of 32), checked against sizes computed by hand."""
import subprocess
import sys

import cv2
import numpy as np
import pytest
from mmcv.transforms import Compose
from mmseg.registry import TRANSFORMS

import rapidnet_mm  # noqa: F401  (registers AlignResize)
from rapidnet_mm.transforms import AlignResize, aligned_size

pytestmark = pytest.mark.core

# (width, height) -> keep-ratio size -> aligned size, worked out by hand for scale (2048, 512):
# factor = min(2048 / long side, 512 / short side), each side int(side * factor + 0.5), then
# each side rounded *up* to a multiple of 32.
HAND_COMPUTED = [
    ((683, 512), (683, 512), (704, 512)),    # typical ADE image: factor 1; 683 -> 704 (not 672)
    ((512, 384), (683, 512), (704, 512)),    # factor 4/3: 682.67 -> 683
    ((2000, 300), (2048, 307), (2048, 320)),  # long side binds: factor 1.024, 307.2 -> 307
    ((131, 97), (691, 512), (704, 512)),     # factor 512/97: 691.46 -> 691
    ((450, 600), (512, 683), (512, 704)),    # portrait: the short side is the width
    ((1024, 512), (1024, 512), (1024, 512)),  # already aligned: unchanged
    ((1001, 700), (732, 512), (736, 512)),   # factor 512/700: 732.16 -> 732 -> 736
]


@pytest.mark.parametrize('size,rescaled,aligned', HAND_COMPUTED)
def test_sizes_match_hand_computation(size, rescaled, aligned):
    assert aligned_size(*size, scale=(2048, 512), size_divisor=32) == (rescaled, aligned)
    width, height = size
    img = np.zeros((height, width, 3), np.uint8)
    out = AlignResize(scale=(2048, 512), size_divisor=32)(dict(img=img))
    assert out['img'].shape == (aligned[1], aligned[0], 3)
    assert out['img_shape'] == (aligned[1], aligned[0])
    assert out['scale_factor'] == (aligned[0] / width, aligned[1] / height)
    assert out['keep_ratio'] is True


def test_scale_order_and_divisor():
    # (512, 2048) bounds the same way as (2048, 512); another divisor rounds up to its multiples
    assert aligned_size(683, 512, (512, 2048), 32) == ((683, 512), (704, 512))
    assert aligned_size(683, 512, (2048, 512), 100) == ((683, 512), (700, 600))


def _image(height, width, seed=0):
    rng = np.random.default_rng(seed)
    # smooth content so that interpolation differences are visible but bounded
    img = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_CUBIC)


def test_pixels_are_two_resizes_like_the_original():
    """The original resized twice (imrescale, then imresize to the aligned size). mmseg 1.x's
    Resize(keep_ratio) followed by ResizeToMultiple does the same two steps; a single resize
    straight to the aligned size gives different pixels."""
    img = _image(384, 512)
    ours = TRANSFORMS.build(dict(type='AlignResize', scale=(2048, 512)))(dict(img=img.copy()))
    library = Compose([
        TRANSFORMS.build(dict(type='Resize', scale=(2048, 512), keep_ratio=True)),
        TRANSFORMS.build(dict(type='ResizeToMultiple', size_divisor=32)),
    ])(dict(img=img.copy()))
    np.testing.assert_array_equal(ours['img'], library['img'])
    direct = cv2.resize(img, (704, 512), interpolation=cv2.INTER_LINEAR)
    assert ours['img'].shape == direct.shape
    assert np.abs(ours['img'].astype(int) - direct.astype(int)).max() > 0
    # ResizeToMultiple leaves Resize's scale_factor (683/512) behind; ours is the final ratio
    assert library['scale_factor'][0] == 683 / 512
    assert ours['scale_factor'][0] == 704 / 512


def test_seg_maps_follow_with_nearest_interpolation():
    height, width = 97, 131
    seg = np.zeros((height, width), np.uint8)
    seg[:, 40:] = 3
    seg[50:, :] = 7
    seg[0, 0] = 255
    results = dict(img=_image(height, width), gt_seg_map=seg.copy(), seg_fields=['gt_seg_map'])
    out = AlignResize()(results)
    assert out['gt_seg_map'].shape == (512, 704) == out['img'].shape[:2]
    assert out['gt_seg_map'].dtype == np.uint8
    assert set(np.unique(out['gt_seg_map'])) <= {0, 3, 7, 255}  # no blended labels
    expected = cv2.resize(cv2.resize(seg, (691, 512), interpolation=cv2.INTER_NEAREST),
                          (704, 512), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(out['gt_seg_map'], expected)


def test_test_pipeline_keeps_ground_truth_at_original_size(tmp_path):
    """As in the configs: ground truth loaded after the resize stays at the original size, so
    mmseg 1.x evaluates the prediction resized back to ``ori_shape`` against it."""
    height, width = 384, 512
    cv2.imwrite(str(tmp_path / 'a.jpg'), _image(height, width))
    label = np.full((height, width), 5, np.uint8)
    cv2.imwrite(str(tmp_path / 'a.png'), label)
    pipeline = Compose([
        TRANSFORMS.build(dict(type='LoadImageFromFile')),
        TRANSFORMS.build(dict(type='AlignResize', scale=(2048, 512), size_divisor=32)),
        TRANSFORMS.build(dict(type='LoadAnnotations', reduce_zero_label=True)),
        TRANSFORMS.build(dict(type='PackSegInputs')),
    ])
    out = pipeline(dict(img_path=str(tmp_path / 'a.jpg'), seg_map_path=str(tmp_path / 'a.png'),
                        reduce_zero_label=True, seg_fields=[]))
    assert tuple(out['inputs'].shape) == (3, 512, 704)
    sample = out['data_samples']
    assert sample.ori_shape == (384, 512)
    assert sample.img_shape == (512, 704)
    assert tuple(sample.gt_sem_seg.data.shape) == (1, 384, 512)
    assert int(sample.gt_sem_seg.data.unique()) == 4  # reduce_zero_label: 5 -> 4


@pytest.mark.parametrize('kwargs,message', [
    (dict(scale=(2048, )), 'two positive ints'),
    (dict(scale=(2048, 0)), 'two positive ints'),
    (dict(size_divisor=0), 'size_divisor must be a positive int'),
    (dict(interpolation='cubic'), "interpolation 'cubic'"),
    (dict(backend='skimage'), 'backend must be'),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AlignResize(**kwargs)


def test_bad_inputs_are_named():
    with pytest.raises(KeyError, match='LoadImageFromFile'):
        AlignResize()(dict())
    results = dict(img=np.zeros((10, 20, 3), np.uint8), gt_seg_map=np.zeros((10, 21), np.uint8),
                   seg_fields=['gt_seg_map'])
    with pytest.raises(ValueError, match='gt_seg_map has shape'):
        AlignResize()(results)


def test_rapidnet_mm_imports_without_mmseg():
    code = ('import sys; sys.modules["mmseg"] = None\n'
            'import rapidnet_mm\n'
            'assert "rapidnet_mm.transforms" not in sys.modules\n'
            'assert "mmseg" not in rapidnet_mm.registered, rapidnet_mm.registered\n'
            'print("ok")')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith('ok')
