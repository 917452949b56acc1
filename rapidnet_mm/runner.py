"""What tools/train.py and tools/test.py share: one entry point for mmpretrain, mmdet and mmseg
configs. The config's ``default_scope`` picks the library; mmengine's Runner does the work."""
import argparse
import os
import os.path as osp
from typing import Iterable, List, Optional

from mmengine.config import Config, DictAction

LIBRARIES = ('mmpretrain', 'mmdet', 'mmseg')


class ConfigError(SystemExit):
    """A config that cannot run here; exits with one clear line on stderr (status 1).

    The message must stay the exit code: Python prints a SystemExit's code only when it is not
    an int, so setting an int status would exit silently.
    """

    def __init__(self, message: str) -> None:
        super().__init__(f'error: {message}')


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default: '
                        './work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value (mmengine syntax)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher (torchrun: pytorch)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_config(path: str, cfg_options: Optional[dict], launcher: str,
                work_dir: Optional[str]) -> Config:
    """Load ``path``, apply overrides and check the scope names a library we serve."""
    if not osp.isfile(path):
        raise ConfigError(f'config file not found: {path}')
    import rapidnet_mm  # noqa: F401  (registers our modules even without custom_imports)
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    scope = cfg.get('default_scope')
    if scope not in LIBRARIES:
        raise ConfigError(f'{path} has default_scope={scope!r}; these tools run configs of '
                          f'{", ".join(LIBRARIES)} (set default_scope in the config)')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = '0'
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


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
    """Yield (setting, checkpoint) for every ``Pretrained`` init_cfg under ``node``."""
    if isinstance(node, dict):
        init_cfg = node.get('init_cfg')
        for i, item in enumerate(init_cfg if isinstance(init_cfg, list) else [init_cfg]):
            if isinstance(item, dict) and item.get('type') == 'Pretrained':
                # list items as --cfg-options names them: init_cfg.0
                where = f'{path}.init_cfg' + (f'.{i}' if isinstance(init_cfg, list) else '')
                yield where, item.get('checkpoint')
        for key, value in node.items():
            if isinstance(value, dict):
                yield from _pretrained_checkpoints(value, f'{path}.{key}')


def check_pretrained_checkpoints(cfg: Config) -> None:
    """Stop with a clear message, before anything is built, when a ``Pretrained`` init_cfg of
    the model names a local file that does not exist (mmengine would fail after building)."""
    for setting, path in _pretrained_checkpoints(cfg.get('model'), 'model'):
        if isinstance(path, str) and '://' not in path and not osp.isfile(path):
            raise ConfigError(
                f'pretrained weights {path!r} ({setting}.checkpoint) do not exist; convert the '
                "authors' ImageNet checkpoint there with tools/convert_official.py, point "
                f'--cfg-options {setting}.checkpoint=/path/to/file.pth at yours, or train from '
                f'scratch with --cfg-options {setting}=None')


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
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    check_sync_bn(cfg)
    prepare_cpu_distributed(cfg)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)
