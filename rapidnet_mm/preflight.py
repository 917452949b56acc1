"""What ``tools/train.py`` and ``tools/test.py`` do to a run's config before mmengine's Runner is
built: the checks that stop early with one line (dataset roots, pretrained files, devices), the
CPU set-up of a distributed run, the test visualization, and building the Runner itself."""
import os
import os.path as osp
from typing import Iterable, List, Optional

from mmengine.config import Config

from .config import ConfigError

# init_cfg types that load a checkpoint file (mmengine's and ours, which also reads the authors'
# files as published).
PRETRAINED_INIT_TYPES = ('Pretrained', 'RapidNetPretrained')


def _data_roots(node, path: str) -> Iterable:
    """Yield (setting, data_root) for every dataset config under ``node``."""
    if isinstance(node, dict):
        if isinstance(node.get('data_root'), str) and node['data_root']:
            yield f'{path}.data_root', node['data_root']
        for key, value in node.items():
            if key in ('dataset', 'datasets'):
                yield from _data_roots(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, item in enumerate(node):
            yield from _data_roots(item, f'{path}[{i}]')


def check_data_roots(cfg: Config, loaders: List[str]) -> None:
    """Stop with a clear message when a dataset root the run needs does not exist."""
    for loader in loaders:
        if cfg.get(loader) is None:
            continue
        for setting, root in _data_roots(cfg[loader].get('dataset'), f'{loader}.dataset'):
            if '://' not in root and not osp.isdir(root):
                raise ConfigError(
                    f'dataset root {root!r} ({setting}) does not exist; put the data there or '
                    f"point the config at it, e.g. --cfg-options {setting}=/path/to/data")


def _pretrained_checkpoints(node, path: str) -> Iterable:
    """Yield (setting, init_cfg) for every ``Pretrained``/``RapidNetPretrained`` init_cfg under
    ``node``."""
    if isinstance(node, dict):
        init_cfg = node.get('init_cfg')
        for i, item in enumerate(init_cfg if isinstance(init_cfg, list) else [init_cfg]):
            if isinstance(item, dict) and item.get('type') in PRETRAINED_INIT_TYPES:
                # list items as --cfg-options names them: init_cfg.0
                where = f'{path}.init_cfg' + (f'.{i}' if isinstance(init_cfg, list) else '')
                yield where, item
        for key, value in node.items():
            if isinstance(value, dict):
                yield from _pretrained_checkpoints(value, f'{path}.{key}')


def check_pretrained_checkpoints(cfg: Config) -> None:
    """Before anything is built: stop with a clear message when a ``Pretrained`` or
    ``RapidNetPretrained`` init_cfg of the model names a local file that does not exist (mmengine
    would fail after building), and download the weights a ``RapidNetPretrained`` URL names
    (into huggingface_hub's cache for the Hub: :mod:`rapidnet_mm.checkpoints.hub`), so that a
    download that fails stops the run here, naming the setting. mmengine's ``Pretrained`` reads
    its URLs (``open-mmlab://``, ``torchvision://``, http) itself."""
    from .checkpoints.hub import CheckpointDownloadError, fetch_checkpoint, is_remote
    for setting, init_cfg in _pretrained_checkpoints(cfg.get('model'), 'model'):
        path = init_cfg.get('checkpoint')
        if not isinstance(path, str):
            continue
        if is_remote(path):
            if init_cfg['type'] != 'RapidNetPretrained':
                continue
            name = path.rstrip('/').rsplit('/', 1)[-1]
            try:
                local = fetch_checkpoint(path, instead=f'pass a local copy: --cfg-options '
                                         f'{setting}.checkpoint=/path/to/{name}')
            except CheckpointDownloadError as err:
                raise ConfigError(f'pretrained weights ({setting}.checkpoint): {err}') from None
            print(f'pretrained weights ({setting}.checkpoint): {path} -> {local}')
        elif not osp.isfile(path):
            raise ConfigError(
                f'pretrained weights {path!r} ({setting}.checkpoint) do not exist; put the '
                "authors' ImageNet file there as published (a file converted by "
                'tools/model_converters/convert_official.py works too), point --cfg-options '
                f'{setting}.checkpoint=/path/to/file.pth at it, or train from scratch with '
                f'--cfg-options {setting}=None')


def prepare_cpu_distributed(cfg: Config) -> None:
    """Let ``torchrun ... --launcher pytorch`` run on machines without a GPU.

    mmengine's pytorch launcher calls ``torch.cuda.set_device`` and wraps the model for one GPU
    per process. Without CUDA this joins the process group with gloo here (mmengine then skips
    its own initialisation) and wraps the model for CPU (no ``device_ids``).
    """
    import torch
    import torch.distributed as dist
    if cfg.launcher == 'none' or torch.cuda.is_available():
        return
    if cfg.launcher != 'pytorch':
        raise ConfigError(f'--launcher {cfg.launcher} needs GPUs; on CPU launch with torchrun '
                          'and --launcher pytorch')
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    if dist_cfg.get('backend', 'nccl') != 'gloo':
        print(f"note: no GPU, so the distributed backend is gloo instead of "
              f"{dist_cfg.get('backend', 'nccl')!r}")
        dist_cfg['backend'] = 'gloo'
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None,
                                     broadcast_buffers=False)


SYNC_BN_TYPES = ('SyncBN', 'MMSyncBN')


def _sync_bn_settings(node, path: str) -> Iterable[str]:
    """Yield the ``--cfg-options`` name of every norm_cfg under ``node`` that asks for SyncBN."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, dict) and value.get('type') in SYNC_BN_TYPES:
                yield f'{path}.{key}'
            else:
                yield from _sync_bn_settings(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, item in enumerate(node):
            yield from _sync_bn_settings(item, f'{path}.{i}')


def check_sync_bn(cfg: Config) -> None:
    """Stop, before anything is built, when a distributed run on a machine without a GPU would
    use SyncBN: DDP refuses SyncBN modules on CPU ("SyncBatchNorm layers only work with GPU
    modules", tests too) and their training forward refuses CPU tensors; mmengine reverts SyncBN
    to BN only when the run is not distributed. The message names every setting to switch to
    plain BN; nothing is switched on its own."""
    from mmengine.device import get_device
    if cfg.get('launcher', 'none') == 'none' or get_device() != 'cpu':
        return
    settings = list(_sync_bn_settings(cfg.get('model'), 'model'))
    overrides = [f'{s}.type=BN' for s in settings]
    if cfg.get('sync_bn') is not None:  # the Runner's own BN -> SyncBN conversion
        settings.append('sync_bn')
        overrides.append('sync_bn=None')
    if settings:
        raise ConfigError(
            f'SyncBN ({", ".join(settings)}) needs CUDA and this machine has none; to run '
            f'distributed on CPU use plain BN: --cfg-options {" ".join(overrides)}')


def check_training_devices(cfg: Config) -> None:
    """Before anything is built, stop when training needs a GPU this machine lacks: SyncBN in
    a distributed run (:func:`check_sync_bn`) or ``AmpOptimWrapper`` (mmengine asserts a GPU;
    testing builds no optimiser wrapper, so only training is checked)."""
    from mmengine.device import get_device
    check_sync_bn(cfg)
    if get_device() == 'cpu' and cfg.get('optim_wrapper', {}).get('type') == 'AmpOptimWrapper':
        raise ConfigError('AmpOptimWrapper (mixed precision) needs a GPU and this machine has '
                          'none; train in fp32 with --no-amp')


def build_runner(cfg: Config):
    """mmengine's Runner (or the config's ``runner_type``) for ``cfg``, after the device
    checks and set-up a run needs (:func:`check_sync_bn`, :func:`prepare_cpu_distributed`)."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    check_sync_bn(cfg)
    prepare_cpu_distributed(cfg)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def enable_test_visualization(cfg: Config, show_dir: str,
                              score_thr: Optional[float] = None) -> str:
    """Turn on the library's visualization hook (``default_hooks.visualization``) so that the
    test run draws ground truth beside prediction for every test image into ``show_dir``.

    As mmdet's and mmseg's tools/test.py do (``--show-dir``), except that the images go into
    ``show_dir`` itself rather than under ``work_dir/timestamp``: mmdet's hook re-joins a relative
    ``test_out_dir`` with the work dir on every batch, an absolute one is kept as it is.

    Args:
        cfg: The test config; its hook and ``visualizer`` come from the library bases.
        show_dir: Where the images go (created).
        score_thr: Detection only: draw predictions scoring at least this (the hook's
            ``score_thr``, 0.3 by default).

    Returns:
        The absolute ``show_dir``.
    """
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None or cfg.get('visualizer') is None:
        raise ConfigError('--show-dir needs default_hooks.visualization and visualizer in the '
                          "config (the library's default_runtime base provides both)")
    if score_thr is not None and cfg.default_scope != 'mmdet':
        raise ConfigError(f'--show-score-thr is for detection configs; {cfg.default_scope} '
                          'draws every prediction')
    show_dir = osp.abspath(show_dir)
    os.makedirs(show_dir, exist_ok=True)
    if cfg.default_scope == 'mmdet':  # DetVisualizationHook saves every test image itself
        hook.update(draw=True, test_out_dir=show_dir)
        if score_thr is not None:
            hook.score_thr = score_thr
    elif cfg.default_scope == 'mmseg':  # SegVisualizationHook: through the visualizer's backend
        hook.update(draw=True, interval=1)
        cfg.visualizer.save_dir = show_dir  # LocalVisBackend: show_dir/vis_data/vis_image/
    else:  # mmpretrain's VisualizationHook takes its own switches
        hook.update(enable=True, interval=1, out_dir=show_dir)
    return show_dir
