"""Weights by URL, through a stand-in for the Hugging Face Hub on 127.0.0.1 (tests/hub_standin.py):
the configs' default URLs initialise the backbone, the tools take URLs, and every way a download
can fail is one line naming the fix, with nothing half-written left in the cache (timm's
pretrained=True: test_timm_models.py). Nothing here reaches the internet."""
import glob
import hashlib
import math
import os
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from numeric_helpers import assert_close_to_scale
import rapidnet_mm

from cls_helpers import authors_checkpoint
from det_helpers import DET_CONFIGS, build_detector, load_cfg
from hub_standin import COMMIT, checkpoint_bytes
from original_layout import OriginalRapidNet, randomize_
from rapidnet_mm.checkpoints import CheckpointLayoutError, classification
from rapidnet_mm.checkpoints.hub import (AUTHORS_FILES, CheckpointDownloadError, HubFile,
                                         authors_url, fetch_checkpoint, parse_hub_location)
from rapidnet_mm.checkpoints.loading import read_checkpoint, to_our_layout
from tool_helpers import ROOT

pytestmark = pytest.mark.core  # also run in the torch 2.1 stack

REPO = 'SLDGroup/RapidNet'
TI_URL = 'https://huggingface.co/SLDGroup/RapidNet/resolve/main/RapidNet_Ti.pth'
X = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope='module')
def authors_ti():
    """An authors' RapidNet_Ti.pth (raw and EMA sets differ), its bytes, and the EMA network."""
    raw = randomize_(OriginalRapidNet('ti'), seed=31).eval()
    ema = randomize_(OriginalRapidNet('ti'), seed=32).eval()
    ckpt = authors_checkpoint(raw, ema)
    return ckpt, checkpoint_bytes(ckpt), ema


def cache_files(hub_home) -> list:
    """Every file of huggingface_hub's cache (locks and the cache tag aside), relative."""
    found = []
    for path in glob.glob(osp.join(hub_home, 'hub', '**'), recursive=True):
        if osp.isfile(path) and '.locks' not in path and not path.endswith('CACHEDIR.TAG'):
            found.append(osp.relpath(path, osp.join(hub_home, 'hub')))
    return sorted(found)


def test_configs_default_to_the_authors_hub_files():
    for arch in ('ti', 's', 'm', 'b'):
        seg = osp.join(ROOT, f'configs/seg/fpn_rapidnet_{arch}_ade20k.py')
        for path in (DET_CONFIGS[arch], seg):
            init_cfg = Config.fromfile(path).model.backbone.init_cfg
            assert init_cfg.type == 'RapidNetPretrained'
            assert init_cfg.checkpoint == authors_url('classification', arch) == (
                f'https://huggingface.co/SLDGroup/RapidNet/resolve/main/'
                f'{AUTHORS_FILES["classification"][arch]}')
    assert authors_url('classification', 'ti') == TI_URL


def test_hub_locations_are_recognised(hub):
    expected = HubFile(REPO, 'Detection/RapidNet_M_Detection.pth', 'main')
    for spec in ('https://huggingface.co/SLDGroup/RapidNet/resolve/main/Detection/'
                 'RapidNet_M_Detection.pth',
                 'https://huggingface.co/SLDGroup/RapidNet/blob/main/Detection/'
                 'RapidNet_M_Detection.pth',
                 'https://hf.co/SLDGroup/RapidNet/resolve/main/Detection/RapidNet_M_Detection.pth'
                 '?download=true',
                 'hf://SLDGroup/RapidNet/Detection/RapidNet_M_Detection.pth',
                 f'{hub.endpoint}/SLDGroup/RapidNet/resolve/main/Detection/'
                 'RapidNet_M_Detection.pth'):  # the HF_ENDPOINT mirror's own URLs
        assert parse_hub_location(spec) == expected, spec
    assert parse_hub_location('hf://SLDGroup/RapidNet@v1.0/RapidNet_S.pth') == HubFile(
        REPO, 'RapidNet_S.pth', 'v1.0')
    assert expected.url == ('https://huggingface.co/SLDGroup/RapidNet/resolve/main/Detection/'
                            'RapidNet_M_Detection.pth')
    for other in ('checkpoints/RapidNet_S.pth', 'https://example.com/RapidNet_S.pth',
                  'https://huggingface.co/SLDGroup/RapidNet', 's3://bucket/RapidNet_S.pth'):
        assert parse_hub_location(other) is None, other


def test_config_default_url_initialises_the_backbone(hub, authors_ti, capsys):
    """configs/det/maskrcnn_rapidnet_ti_coco.py as it is: the training check downloads the
    authors' file once into huggingface_hub's cache (with the user's token), and
    RapidNetPretrained gives the converter path's backbone, the authors' EMA network."""
    from rapidnet_mm.preflight import check_pretrained_checkpoints
    ckpt, data, ema = authors_ti
    hub.add(REPO, 'RapidNet_Ti.pth', data)
    hub.env.set(HF_TOKEN='hf_standin_token')
    cfg = load_cfg(DET_CONFIGS['ti'])
    check_pretrained_checkpoints(cfg)
    assert f'{TI_URL} -> ' in capsys.readouterr().out
    blob = osp.join('hub', 'models--SLDGroup--RapidNet', 'snapshots', COMMIT, 'RapidNet_Ti.pth')
    assert cache_files(os.environ['HF_HOME']) == sorted([
        osp.join('models--SLDGroup--RapidNet', 'blobs', hashlib.sha256(data).hexdigest()),
        osp.join('models--SLDGroup--RapidNet', 'refs', 'main'), osp.relpath(blob, 'hub')])
    model = build_detector(cfg, pretrained=True)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model.init_weights()
    assert hub.downloads('RapidNet_Ti.pth') == 1  # the initialiser read the cached file
    (get, ) = [{k.lower(): v for k, v in headers.items()} for method, path, headers in hub.requests
               if method == 'GET' and path.endswith('/RapidNet_Ti.pth')]
    assert get['authorization'] == 'Bearer hf_standin_token'
    assert get['user-agent'].startswith(f'rapidnet_mm/{rapidnet_mm.__version__}; hf_hub/')
    reference = classification.convert(ckpt).state_dict
    backbone = model.backbone.eval()
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, reference[f'backbone.{key}']), key
    with torch.no_grad():
        for got, expected in zip(backbone(X), ema.stage_outputs(X)):
            assert_close_to_scale(got, expected)


def test_tools_take_urls(hub, authors_ti, tmp_path, capsys):
    """convert_official.py and infer.py read the same URL, downloaded once; infer's one-line
    error for a URL that is not there."""
    ckpt, data, _ = authors_ti
    hub.add(REPO, 'RapidNet_Ti.pth', data)
    dst = tmp_path / 'rapidnet_ti_in1k.pth'
    from tool_helpers import load_tool
    assert load_tool('model_converters/convert_official').main([TI_URL, str(dst)]) == 0
    assert 'classification checkpoint, RapidNet-ti' in capsys.readouterr().out
    saved = torch.load(dst, map_location='cpu', weights_only=True)
    assert saved['meta']['source'] == 'RapidNet_Ti.pth'
    for key, value in classification.convert(ckpt).state_dict.items():
        assert torch.equal(saved['state_dict'][key], value), key
    infer = load_tool('infer')
    image = tmp_path / 'image.png'
    import cv2
    cv2.imwrite(str(image), (torch.rand(48, 64, 3) * 255).byte().numpy())
    infer.main([osp.join(ROOT, 'configs/cls/rapidnet_ti_in1k.py'),
                'hf://SLDGroup/RapidNet/RapidNet_Ti.pth', str(image), '--out-dir',
                str(tmp_path / 'out')])
    out = capsys.readouterr().out
    assert "weights from the authors' classification checkpoint of RapidNet-ti" in out
    assert osp.isfile(tmp_path / 'out' / 'image.png')
    assert hub.downloads('RapidNet_Ti.pth') == 1
    missing = 'hf://SLDGroup/RapidNet/RapidNet_XL.pth'
    assert infer.main([osp.join(ROOT, 'configs/cls/rapidnet_ti_in1k.py'), missing,
                       str(image)]) == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]  # after any logging complaint
    assert message.startswith(f"error: {missing}: the Hub repository {REPO} has no file "
                              "'RapidNet_XL.pth' at revision 'main' (404)")
    assert 'RapidNet_Ti.pth, RapidNet_S.pth' in message and '\n' not in message


def test_a_missing_path_is_a_404_naming_the_authors_files(hub, authors_ti):
    from rapidnet_mm.config import ConfigError
    from rapidnet_mm.preflight import check_pretrained_checkpoints
    hub.add(REPO, 'RapidNet_Ti.pth', authors_ti[1])
    cfg = load_cfg(DET_CONFIGS['ti'], {
        'model.backbone.init_cfg.checkpoint': 'https://huggingface.co/SLDGroup/RapidNet/'
                                              'resolve/main/RapidNet_Tiny.pth'})
    with pytest.raises(ConfigError) as err:
        check_pretrained_checkpoints(cfg)
    message = f'error: {err.value}'
    assert message.startswith('error: pretrained weights (model.backbone.init_cfg.checkpoint): '
                              'https://huggingface.co/SLDGroup/RapidNet/resolve/main/'
                              "RapidNet_Tiny.pth: the Hub repository SLDGroup/RapidNet has no "
                              "file 'RapidNet_Tiny.pth' at revision 'main' (404); check the path")
    assert "the authors' files are RapidNet_Ti.pth" in message and '\n' not in message
    for spec, expected in (
            ('hf://SLDGroup/RapidNet@v2/RapidNet_Ti.pth', "has no revision 'v2'"),
            ('hf://SLDGroup/NoSuchRepo/RapidNet_Ti.pth', 'there is no Hub repository '
                                                          'SLDGroup/NoSuchRepo')):
        with pytest.raises(CheckpointDownloadError, match=expected):
            fetch_checkpoint(spec)
    assert not any('blobs' in f for f in cache_files(os.environ['HF_HOME']))


def test_a_download_cut_short_keeps_nothing(hub, authors_ti):
    """huggingface_hub retries a transfer cut short; when every try is cut, nothing lands in
    the cache, and the next run downloads it whole."""
    key = (REPO, 'RapidNet_Ti.pth')
    data = hub.add(REPO, 'RapidNet_Ti.pth', authors_ti[1])
    hub.cut[key] = 1  # once: huggingface_hub's retry gets all of it
    path = fetch_checkpoint(TI_URL)
    with open(path, 'rb') as f:
        assert f.read() == data
    assert hub.downloads('RapidNet_Ti.pth') == 2
    hub.add(REPO, 'Detection/RapidNet_M_Detection.pth', data[:-1] + b'!')  # another blob
    hub.cut[(REPO, 'Detection/RapidNet_M_Detection.pth')] = 100  # every try
    before = cache_files(os.environ['HF_HOME'])
    with pytest.raises(CheckpointDownloadError) as err:
        fetch_checkpoint('hf://SLDGroup/RapidNet/Detection/RapidNet_M_Detection.pth')
    message = str(err.value)
    assert message.startswith('the download of hf://SLDGroup/RapidNet/Detection/'
                              'RapidNet_M_Detection.pth was cut short (')
    assert 'nothing was kept under its name: run again' in message and '\n' not in message
    assert cache_files(os.environ['HF_HOME']) == before
    assert not glob.glob(osp.join(os.environ['HF_HOME'], '**', '*.incomplete'), recursive=True)
    hub.cut.clear()
    path = fetch_checkpoint('hf://SLDGroup/RapidNet/Detection/RapidNet_M_Detection.pth')
    assert osp.getsize(path) == len(data)


def test_offline_reads_the_cache_and_names_what_is_missing(hub, authors_ti):
    hub.add(REPO, 'RapidNet_Ti.pth', authors_ti[1])
    cached = fetch_checkpoint(TI_URL)
    requests = len(hub.requests)
    hub.env.set(HF_HUB_OFFLINE='1')
    assert fetch_checkpoint(TI_URL) == cached
    assert to_our_layout(read_checkpoint(TI_URL)).conversion.arch == 'ti'
    with pytest.raises(CheckpointDownloadError) as err:
        fetch_checkpoint('hf://SLDGroup/RapidNet/RapidNet_S.pth')
    assert str(err.value) == (
        'hf://SLDGroup/RapidNet/RapidNet_S.pth is not in the Hugging Face cache '
        f"({osp.join(os.environ['HF_HOME'], 'hub')}) and HF_HUB_OFFLINE=1 forbids downloading "
        'it; run once without HF_HUB_OFFLINE to download it into the cache, or pass the path of '
        'a local copy instead of the URL')
    assert len(hub.requests) == requests  # offline: not one request


@pytest.mark.slow
def test_an_unreachable_hub_names_the_url_and_the_local_way(hub, tmp_path):
    """Nothing listens on the port: huggingface_hub retries for about 20 s, then one line."""
    from rapidnet_mm.config import ConfigError
    from rapidnet_mm.preflight import check_pretrained_checkpoints
    hub.env.set(HF_ENDPOINT='http://127.0.0.1:9')
    cfg = load_cfg(DET_CONFIGS['ti'])
    with pytest.raises(ConfigError) as err:
        check_pretrained_checkpoints(cfg)
    assert f'error: {err.value}' == (
        f'error: pretrained weights (model.backbone.init_cfg.checkpoint): cannot reach '
        f'http://127.0.0.1:9 to download {TI_URL} ([Errno 111] Connection refused); check the '
        'network (or HF_ENDPOINT for a mirror), or download the file elsewhere and pass a local '
        'copy: --cfg-options model.backbone.init_cfg.checkpoint=/path/to/RapidNet_Ti.pth')
    assert cache_files(os.environ['HF_HOME']) == []


def test_foreign_and_truncated_downloads_are_refused(hub, authors_ti):
    ckpt, data, _ = authors_ti
    hub.add(REPO, 'notes.pth', {'epoch': 3, 'notes': 'no weights'})
    with pytest.raises(CheckpointLayoutError) as err:
        to_our_layout(read_checkpoint('hf://SLDGroup/RapidNet/notes.pth'))
    assert str(err.value).splitlines() == [
        "neither an authors' RapidNet checkpoint nor an mmengine one (no 'state_dict' of "
        'tensors); its keys are (2 keys):', '  epoch', '  notes']
    from rapidnet_mm.checkpoints.initializer import RapidNetPretrained
    from rapidnet_mm.models import RapidNet
    hub.add(REPO, 'resnet.pth', {'state_dict': {'conv1.weight': torch.zeros(8, 3, 7, 7),
                                                'fc.weight': torch.zeros(10, 8)}})
    with pytest.raises(CheckpointLayoutError) as err:
        RapidNetPretrained('hf://SLDGroup/RapidNet/resnet.pth')(RapidNet(arch='ti'))
    assert "hf://SLDGroup/RapidNet/resnet.pth holds no 'backbone.' tensors" in str(err.value)
    assert str(err.value).splitlines()[1:] == ['  conv1.weight', '  fc.weight']
    # an authors' file that lost a block: its tensors are listed
    partial = dict(ckpt, state_dict_ema={k: v for k, v in ckpt['state_dict_ema'].items()
                                         if not k.startswith('backbone.2.8.')})
    hub.add(REPO, 'RapidNet_Ti_partial.pth', partial)
    with pytest.raises(CheckpointLayoutError) as err:
        to_our_layout(read_checkpoint('hf://SLDGroup/RapidNet/RapidNet_Ti_partial.pth'))
    lines = str(err.value).splitlines()
    assert lines[0].startswith('the checkpoint lacks tensors of RapidNet-ti')
    assert lines[1].startswith('  backbone.stages.2.8.') and lines[-1].startswith('  ... and ')
    assert all(line.startswith('  backbone.stages.2.8.') for line in lines[1:-1])
    # a file truncated at the source (its Content-Length is the truncated size)
    hub.add(REPO, 'RapidNet_Ti.pth', data[:len(data) // 2])
    with pytest.raises(CheckpointLayoutError) as err:
        read_checkpoint(TI_URL)
    message = str(err.value)
    blob = osp.realpath(fetch_checkpoint(TI_URL))
    assert message.startswith(f'cannot read {TI_URL} as a PyTorch checkpoint (')
    assert f'the download, {blob}, is truncated or not a checkpoint; delete that file to ' \
        'download it again' in message and '\n' not in message
    # the fix works: the source repaired, the blob deleted, the next read downloads it whole
    hub.add(REPO, 'RapidNet_Ti.pth', data)
    os.remove(blob)
    assert to_our_layout(read_checkpoint(TI_URL)).conversion.arch == 'ti'


def test_other_urls_go_to_mmengines_cache_whole_or_not_at_all(hub, authors_ti):
    ckpt, data, _ = authors_ti
    hub.plain['RapidNet_Ti.pth'] = data
    url = f'{hub.endpoint}/plain/RapidNet_Ti.pth'
    assert parse_hub_location(url) is None
    loaded = to_our_layout(read_checkpoint(url))
    assert loaded.conversion.arch == 'ti'
    folder = osp.join(os.environ['TORCH_HOME'], 'hub', 'checkpoints')
    assert os.listdir(folder) == ['RapidNet_Ti.pth']
    hub.plain['RapidNet_S.pth'] = data
    hub.cut['RapidNet_S.pth'] = 1
    with pytest.raises(CheckpointDownloadError) as err:
        fetch_checkpoint(f'{hub.endpoint}/plain/RapidNet_S.pth')
    assert f'received {len(data) // 2} of {len(data)} bytes' in str(err.value)
    assert os.listdir(folder) == ['RapidNet_Ti.pth']  # nothing under the name, no leftovers
    with pytest.raises(CheckpointDownloadError, match='HTTP 404 Not Found; check the URL'):
        fetch_checkpoint(f'{hub.endpoint}/plain/RapidNet_B.pth')
    with pytest.raises(CheckpointDownloadError, match='not s3://'):
        fetch_checkpoint('s3://bucket/RapidNet_Ti.pth')


@pytest.mark.slow
def test_tools_test_evaluates_the_authors_segmentor_by_url(hub, tmp_path):
    """``tools/test.py CONFIG <Hub URL of RapidNet_M_Sem_Seg.pth>`` converts the authors' mmseg
    0.30 file in memory: its predictions on a tiny ADE20K-layout set equal those of the same
    weights converted to a file beforehand. The config's own ImageNet URL is never fetched."""
    import mmengine

    from cls_helpers import run_tool
    from rapidnet_mm.checkpoints import segmentation
    from rapidnet_mm.datasets.tiny_ade20k import make_ade_layout
    from seg_helpers import overrides, synthesise
    ckpt, _, _ = synthesise('m', seed=5)
    hub.add(REPO, AUTHORS_FILES['segmentation']['m'], ckpt)
    url = authors_url('segmentation', 'm')
    data_root = str(tmp_path / 'ADEChallengeData2016')
    make_ade_layout(data_root)
    # no init_cfg override (its URL must not be fetched) and no seed: two runs that did not
    # load the same weights would differ
    options = [o for o in overrides(data_root)
               if not o.startswith(('model.backbone.init_cfg', 'randomness.seed'))]
    converted = tmp_path / 'fpn_rapidnet_m_converted.pth'
    torch.save({'state_dict': segmentation.convert(ckpt).state_dict}, converted)
    config = osp.join(ROOT, 'configs/seg/fpn_rapidnet_m_ade20k.py')
    results = {}
    for name, checkpoint in (('url', url), ('converted', str(converted))):
        out = tmp_path / f'{name}.pkl'
        run = run_tool([sys.executable, osp.join(ROOT, 'tools/test.py'), config, checkpoint,
                        '--work-dir', str(tmp_path / name), '--out', str(out), '--cfg-options']
                       + options, timeout=900)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        results[name] = (run.stdout + run.stderr, mmengine.load(str(out)))
    log = results['url'][0]
    assert "weights: the authors' segmentation checkpoint of RapidNet-m, converted in memory" \
        in log
    assert 'weights: an mmengine checkpoint in rapidnet_mm names' in results['converted'][0]
    by_url, by_file = results['url'][1], results['converted'][1]
    assert len(by_url) == len(by_file) == 3
    for a, b in zip(by_url, by_file):
        assert a['img_path'] == b['img_path']
        assert torch.equal(a['pred_sem_seg']['data'], b['pred_sem_seg']['data'])
        assert torch.equal(a['seg_logits']['data'], b['seg_logits']['data'])
    assert hub.downloads(AUTHORS_FILES['segmentation']['m']) == 1
    assert not [p for _, p, _ in hub.requests if p.endswith('/RapidNet_M.pth')]


@pytest.mark.slow
def test_tools_test_evaluates_the_authors_detector_by_url(hub, tmp_path):
    """``tools/test.py configs/det/maskrcnn_rapidnet_m_coco.py <Hub URL of
    RapidNet_M_Detection.pth>``: the authors' mmdet 2.28 file, converted in memory, predicts on
    three tiny-COCO images exactly what the same weights converted to a file beforehand predict
    (every box, score, label and mask). The config's own ImageNet URL is never fetched."""
    import mmengine

    from cls_helpers import run_tool
    from det_helpers import synthesise_mmdet2_checkpoint
    from rapidnet_mm.checkpoints import detection
    from rapidnet_mm.datasets.tiny_coco import make_dataset
    from original_layout import OriginalDownstreamBackbone
    ckpt, _ = synthesise_mmdet2_checkpoint(build_detector(load_cfg(DET_CONFIGS['m'])), seed=7)
    # weights that keep activations in range, so that the RPN proposes boxes and the RoI head
    # keeps 100 per image: the authors' backbone as initialised, the neck's and heads' normal
    # values scaled by 1/sqrt(fan-in)
    state = ckpt['state_dict']
    for key, value in state.items():
        if value.dim() > 1:
            value.div_(math.sqrt(value[0].numel()))
    torch.manual_seed(7)
    state.update({f'backbone.{k}': v for k, v in
                  OriginalDownstreamBackbone('m').eval().state_dict().items()})
    hub.add(REPO, AUTHORS_FILES['detection']['m'], ckpt)
    data_root = str(tmp_path / 'tiny_coco')
    make_dataset(data_root, 1, 3, 128, verbose=False)
    # the user's config, on three 128x128 images at their size and with every detection kept
    # (score_thr 0), so that two runs that loaded different weights could not agree; only the
    # predictions are dumped (CocoMetric's 3 categories cannot name the model's 80 classes)
    config = tmp_path / 'maskrcnn_rapidnet_m_tiny.py'
    config.write_text(f"""_base_ = {DET_CONFIGS['m']!r}
model = dict(test_cfg=dict(rcnn=dict(score_thr=0.0)))
test_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(
    data_root={data_root + '/'!r}, ann_file='annotations/instances_val.json',
    data_prefix=dict(img='val/'), metainfo=dict(classes=('circle', 'triangle', 'square')),
    pipeline=[dict(type='LoadImageFromFile'),
              dict(type='Resize', scale=(128, 128), keep_ratio=True),
              dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape',
                                                    'img_shape', 'scale_factor'))]))
test_evaluator = dict(_delete_=True, type='mmengine.DumpResults', out_file_path='unused.pkl')
""")
    converted = tmp_path / 'maskrcnn_rapidnet_m_converted.pth'
    torch.save({'state_dict': detection.convert(ckpt).state_dict}, converted)
    url = authors_url('detection', 'm')
    results = {}
    for seed, (name, checkpoint) in enumerate((('url', url), ('converted', str(converted)))):
        out = tmp_path / f'{name}.pkl'
        run = run_tool([sys.executable, osp.join(ROOT, 'tools/test.py'), str(config), checkpoint,
                        '--work-dir', str(tmp_path / name), '--cfg-options',
                        f'test_evaluator.out_file_path={out}', f'randomness.seed={seed + 1}'],
                       timeout=900)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        results[name] = (run.stdout + run.stderr, mmengine.load(str(out)))
    assert "weights: the authors' detection checkpoint of RapidNet-m, converted in memory" \
        in results['url'][0]
    by_url, by_file = results['url'][1], results['converted'][1]
    assert len(by_url) == len(by_file) == 3
    for a, b in zip(by_url, by_file):
        assert a['img_path'] == b['img_path']
        pa, pb = a['pred_instances'], b['pred_instances']
        assert len(pa['scores']) == 100  # mmdet's max_per_img: nothing was filtered away
        for key in ('bboxes', 'scores', 'labels', 'masks'):
            assert torch.equal(torch.as_tensor(pa[key]), torch.as_tensor(pb[key])), key
    assert hub.downloads(AUTHORS_FILES['detection']['m']) == 1
    assert not [p for _, p, _ in hub.requests if p.endswith('/RapidNet_M.pth')]


@pytest.mark.slow
def test_tools_test_evaluates_the_authors_classifier_by_url(hub, tmp_path):
    """The authors' ImageNet file (4 classes here) by URL through tools/test.py: its EMA weights,
    converted in memory, predict exactly what the same weights converted to a file predict."""
    import mmengine

    from cls_helpers import NUM_CLASSES, make_imagenet, run_tool, tiny_config
    raw = randomize_(OriginalRapidNet('ti', num_classes=NUM_CLASSES), seed=51).eval()
    ema = randomize_(OriginalRapidNet('ti', num_classes=NUM_CLASSES), seed=52).eval()
    ckpt = authors_checkpoint(raw, ema)
    hub.add(REPO, 'RapidNet_Ti.pth', ckpt)
    make_imagenet(str(tmp_path / 'imagenet'), {'val': 2})
    config = tiny_config('configs/cls/rapidnet_ti_in1k.py', str(tmp_path / 'cfg.py'),
                         str(tmp_path / 'imagenet'), None)
    converted = tmp_path / 'rapidnet_ti_converted.pth'
    torch.save({'state_dict': classification.convert(ckpt).state_dict}, converted)
    results = {}
    for seed, (name, checkpoint) in enumerate((('url', 'hf://SLDGroup/RapidNet/RapidNet_Ti.pth'),
                                               ('converted', str(converted)))):
        out = tmp_path / f'{name}.pkl'
        # another seed per run: runs that did not load the same weights would differ
        run = run_tool([sys.executable, osp.join(ROOT, 'tools/test.py'), config, checkpoint,
                        '--work-dir', str(tmp_path / name), '--out', str(out), '--cfg-options',
                        f'randomness.seed={seed + 1}'], timeout=900)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        results[name] = (run.stdout + run.stderr, mmengine.load(str(out)))
    assert "weights: the authors' classification checkpoint of RapidNet-ti, converted in " \
        "memory; converted the ema weights ('state_dict_ema')" in results['url'][0]
    by_url, by_file = results['url'][1], results['converted'][1]
    assert len(by_url) == len(by_file) == 2 * NUM_CLASSES
    for a, b in zip(by_url, by_file):
        assert a['img_path'] == b['img_path']
        assert torch.equal(a['pred_score'], b['pred_score'])


def test_test_tool_reads_either_layout_and_refuses_foreign_files(hub, authors_ti, tmp_path):
    """What tools/test.py does before and after building the Runner."""
    from types import SimpleNamespace

    from rapidnet_mm.config import ConfigError
    from rapidnet_mm.eval_weights import load_test_weights, read_test_weights
    ckpt, data, _ = authors_ti
    hub.add(REPO, 'RapidNet_Ti.pth', data)
    cfg = Config(dict(load_from=None))
    loaded = read_test_weights(cfg, TI_URL)
    assert loaded.conversion.kind == 'classification' and cfg.load_from is None
    ours = tmp_path / 'ours.pth'
    torch.save({'state_dict': {'weight': torch.ones(2, 3), 'bias': torch.zeros(2)}}, ours)
    loaded = read_test_weights(cfg, str(ours))
    assert loaded.conversion is None and cfg.load_from == str(ours)  # mmengine loads it
    runner = SimpleNamespace(model=torch.nn.Linear(3, 2))
    load_test_weights(runner, loaded, str(ours))  # shares keys with the model: mmengine's turn
    foreign = tmp_path / 'foreign.pth'
    torch.save({'state_dict': {'conv1.weight': torch.ones(1)}}, foreign)
    with pytest.raises(CheckpointLayoutError) as err:
        load_test_weights(runner, read_test_weights(cfg, str(foreign)), str(foreign))
    assert str(err.value).splitlines() == [
        f"{foreign} fits neither layout: not an authors' RapidNet checkpoint and none of its "
        "tensors belongs to this config's Linear; its keys are (1 keys):", '  conv1.weight']
    for checkpoint, weights, expected in (
            (str(tmp_path / 'nope.pth'), 'ema',
             f"error: checkpoint not found: {tmp_path / 'nope.pth'}"),
            (str(ours), 'raw', "error: weights='raw' applies to the authors' ImageNet files; this "
                               'mmengine checkpoint holds a single set of weights'),
            ('hf://SLDGroup/RapidNet/none.pth', 'ema',
             "error: hf://SLDGroup/RapidNet/none.pth: the Hub repository SLDGroup/RapidNet has no "
             "file 'none.pth' at revision 'main' (404)")):
        with pytest.raises(ConfigError) as err:
            read_test_weights(cfg, checkpoint, weights)
        assert f'error: {err.value}'.startswith(expected), str(err.value)
