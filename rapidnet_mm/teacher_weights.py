"""The distillation teacher's weights, when training starts.

The ImageNet configs default ``model.teacher.checkpoint`` to the weights the authors' recipe
distils from (DeiT's RegNetY-16GF, as timm's Hub copy ``timm/regnety_160.deit_in1k``).
``tools/train.py`` calls :func:`prepare_teacher` before it builds the runner: a missing teacher
stops the run with one line, and a URL is downloaded through the package's one download path
(:mod:`rapidnet_mm.checkpoints.hub`: cached, ``HF_ENDPOINT``/``HF_HUB_OFFLINE``, one line on
failure, nothing half-written), so that the model then reads the cached file. Building,
evaluating, converting and exporting never call this; nothing is fetched for them.
"""
from mmengine.config import Config

from .checkpoints.hub import CheckpointDownloadError, fetch_checkpoint, is_remote
from .config import ConfigError
from .models.distillation import TEACHER_LOCAL_COPY, teacher_setup_problem

SETTING = 'model.teacher.checkpoint'


def prepare_teacher(cfg: Config) -> None:
    """Stop when ``cfg``'s distillation cannot start; download a teacher given by URL.

    Args:
        cfg: The training config; a remote ``model.teacher.checkpoint`` is replaced by the local
            (cached) file.

    Raises:
        ConfigError: no teacher weights, a local file that does not exist, or a download that
            fails (one line naming the setting and the fix).
    """
    model = cfg.get('model') or {}
    problem = teacher_setup_problem(model)
    if problem:
        raise ConfigError(problem)
    teacher = model.get('teacher') or {}
    url = teacher.get('checkpoint')
    distilling = (model.get('type') == 'RapidNetDistiller'
                  and model.get('head', {}).get('distillation', True))
    if not (distilling and isinstance(url, str) and is_remote(url)):
        return
    try:
        local = fetch_checkpoint(url, instead=TEACHER_LOCAL_COPY)
    except CheckpointDownloadError as err:
        raise ConfigError(f"the teacher's weights ({SETTING}): {err}") from None
    print(f"the teacher's weights ({SETTING}): {url} -> {local}")
    teacher['checkpoint'] = local


__all__ = ['prepare_teacher']
