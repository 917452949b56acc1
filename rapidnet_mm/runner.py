"""What tools/train.py and tools/test.py share: one entry point for mmpretrain, mmdet and mmseg
configs. The config's ``default_scope`` picks the library; mmengine's Runner does the work."""
import os
import os.path as osp
from typing import Any, Callable, Iterable, List, Optional

from mmengine.config import Config

from .config import ConfigError, own_value_error
from .errors import DEBUG_ENV

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
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    check_sync_bn(cfg)
    prepare_cpu_distributed(cfg)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def read_test_checkpoint(cfg: Config, checkpoint: str, weights: str = 'ema'):
    """Read the weights ``tools/test.py`` evaluates: a local path or a URL (downloaded by
    :mod:`rapidnet_mm.checkpoints.hub`), in the authors' layout or ours.

    A checkpoint in our names becomes ``cfg.load_from`` (the local file), which mmengine's Runner
    loads as always, its hooks included (e.g. the EMA hook's swap). An authors' file is converted
    in memory, exactly as ``tools/model_converters/convert_official.py`` converts it, and
    :func:`load_test_weights` loads it into the built model.

    Args:
        cfg: The test config (``load_from`` is set here for checkpoints in our names).
        checkpoint: The path or URL given on the command line.
        weights: 'ema' or 'raw', for the authors' ImageNet files.

    Returns:
        The :class:`~rapidnet_mm.checkpoints.loading.CheckpointWeights` read.

    Raises:
        ConfigError: a missing file, a failed download, an unreadable file or one that fits no
            layout (its keys listed), or ``weights`` that does not apply to the file.
    """
    from .checkpoints import CheckpointDownloadError, CheckpointLayoutError, fetch_checkpoint
    from .checkpoints.loading import read_checkpoint_file, read_weights
    try:
        loaded = read_weights(read_checkpoint_file(checkpoint), weights=weights)
        if loaded.conversion is None:
            cfg.load_from = fetch_checkpoint(checkpoint)  # the local (cached) file
    except CheckpointLayoutError as err:
        raise ConfigError(f'{checkpoint}: {err}') from None
    except (FileNotFoundError, CheckpointDownloadError, ValueError) as err:
        raise ConfigError(str(err)) from None
    return loaded


def load_test_weights(runner, loaded, checkpoint: str) -> None:
    """After :func:`build_runner`, before ``runner.test()``: load converted authors' weights
    strictly into the model; for a checkpoint in our names (loaded by mmengine from
    ``load_from``), stop if none of its tensors belongs to the model (a foreign file, keys
    listed), which mmengine's non-strict loading would only warn about.

    Raises:
        CheckpointLayoutError: a file that fits neither layout, or converted weights that do
            not fit the config's model (missing, unexpected or misshapen tensors listed).
    """
    import re

    from mmengine.model import is_model_wrapper

    from .checkpoints import CheckpointLayoutError
    from .checkpoints.loading import load_into
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    if loaded.conversion is not None:
        load_into(model, loaded, checkpoint)
        return
    own = set(model.state_dict())
    if not {re.sub(r'^module\.', '', k) for k in loaded.state_dict} & own:
        raise CheckpointLayoutError(
            f"{checkpoint} fits neither layout: not an authors' RapidNet checkpoint and none of "
            f"its tensors belongs to this config's {type(model).__name__}; its keys are",
            sorted(loaded.state_dict))


def _config_path(node, target: dict, path: str) -> Optional[str]:
    """Where in ``node`` the dict ``target`` (a config being built) is, e.g. model.backbone."""
    if isinstance(node, dict):
        if node.get('type') == target.get('type') and all(
                target.get(k) == v for k, v in node.items() if k != '_scope_'):
            return path
        children = node.items()
    elif isinstance(node, (list, tuple)):
        children = ((str(i), v) for i, v in enumerate(node))
    else:
        return None
    for key, value in children:
        found = _config_path(value, target, f'{path}.{key}' if path else key)
        if found:
            return found
    return None


def _setting_being_built(err: BaseException, cfg: Config) -> Optional[str]:
    """The config path of the innermost registry build that ``err`` passed through."""
    built = None
    tb = err.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == 'build_from_cfg' and isinstance(frame.f_locals.get('cfg'),
                                                                   dict):
            built = frame.f_locals['cfg']
        tb = tb.tb_next
    return None if built is None else _config_path(cfg.to_dict(), built, '')


def config_error_message(err: BaseException, cfg: Config,
                         cfg_options: Optional[dict]) -> Optional[str]:
    """The one-line message for our own clear ValueError raised while ``cfg`` ran; None for
    anything else (whose traceback must stay).

    The message names the config setting the error came from (the model part being built, and
    the ``--cfg-options`` that set something in it).
    """
    own = own_value_error(err)
    if own is None:
        return None
    line = str(own)
    where = _setting_being_built(own, cfg)
    if where:
        given = [f'{k}={v}' for k, v in (cfg_options or {}).items()
                 if k == where or k.startswith(where + '.')]
        line += f' (in {where}' + (f', set by --cfg-options {" ".join(given)}' if given
                                   else '') + ')'
    return line + f'; for the traceback rerun with --debug or {DEBUG_ENV}=1'


def run_reporting_config_errors(work: Callable[[], Any], cfg: Config,
                                cfg_options: Optional[dict], debug: bool = False) -> Any:
    """Run ``work`` (building and running the Runner); our own clear ValueError in the config
    becomes a :class:`ConfigError` naming the setting (one ``error:`` line and exit status 2
    through :func:`rapidnet_mm.cli.run_tool`), unless ``debug`` or ``RAPIDNET_MM_DEBUG=1`` asks
    for the original traceback. Every other exception propagates unchanged."""
    try:
        return work()
    except Exception as err:
        message = None if debug or os.environ.get(DEBUG_ENV) == '1' else config_error_message(
            err, cfg, cfg_options)
        if message is None:
            raise
        raise ConfigError(message) from err


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
