"""Our own clear ValueError raised while a run's Runner is built or runs, as one line naming the
config setting it came from (``tools/train.py``, ``tools/test.py``)."""
import os
from typing import Any, Callable, Optional

from mmengine.config import Config

from .config import ConfigError, own_value_error
from .errors import DEBUG_ENV


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
