"""RapidNet by name: mmpretrain's model hub and mmengine's checkpoint loader learn our models.

``import rapidnet_mm`` calls :func:`register_model_hub`, which

- adds the ImageNet entries of ``configs/cls/metafile.yml`` to mmpretrain's ``ModelHub``
  (``mmpretrain.list_models('rapidnet*')``, ``get_model(name)``,
  ``ImageClassificationInferencer(name)``, ``inference_model(name, img)``);
- teaches mmengine's ``CheckpointLoader`` the authors' Hub repository: a ``load_checkpoint`` of a
  file under :data:`AUTHORS_PREFIX` (the metafiles' ``Weights:``; what mmpretrain's
  ``get_model(name, pretrained=True)`` and the inferencers of mmpretrain, mmdet and mmseg call)
  is downloaded by :mod:`.checkpoints.hub` and converted in memory exactly as ``tools/test.py``
  converts it (EMA weights of the ImageNet files);
- gives each entry without published weights (ablations, deploy forms, the digits demo) a
  ``Weights`` of the :data:`UNPUBLISHED_SCHEME`, in memory only, so that ``pretrained=True``
  refuses in one line naming what is missing instead of building random weights (mmpretrain only
  warns then). Built without weights (``pretrained=False``) these entries work as any config.

Registering is idempotent (a second import, ``custom_imports`` in several configs); a name that
another model index already registered is one :class:`ModelNameConflict` line.
"""
import os.path as osp
import re
from typing import Dict, List

from .checkpoints.hub import AUTHORS_REPO, AUTHORS_REVISION, HubFile, fetch_checkpoint
from .errors import RapidNetError
from .models.distillation import TEACHER_LOCAL_COPY, read_teacher_file
from .shipped import shipped_file

METAFILE = ('configs', 'cls', 'metafile.yml')
# Files of the authors' repository, as the metafiles' Weights: name them.
AUTHORS_PREFIX = HubFile(AUTHORS_REPO, '', AUTHORS_REVISION).url
# The ImageNet configs' distillation teacher: DeiT's RegNetY-16GF weights as timm's Hub copy.
TEACHER_PREFIX = HubFile('timm/regnety_160.deit_in1k', '', 'main').url
UNPUBLISHED_SCHEME = 'rapidnet-mm-unpublished://'


class ModelNameConflict(RapidNetError, ValueError):
    """A name of ours that mmpretrain's ModelHub already holds from another model index."""


class UnpublishedWeightsError(RapidNetError, ValueError):
    """``pretrained=True`` for an entry whose weights were never published."""


def load_from_authors_hub(filename: str, map_location=None) -> dict:
    """mmengine's checkpoint loader for files of the authors' Hub repository.

    Downloaded through :func:`~rapidnet_mm.checkpoints.hub.fetch_checkpoint` (cached,
    ``HF_ENDPOINT``/``HF_HUB_OFFLINE``, one line on failure) and read as ``tools/test.py`` reads
    it: the authors' layout converted in memory (the EMA weights of the ImageNet files), or a
    checkpoint in our names as it is.

    Args:
        filename: The URL under :data:`AUTHORS_PREFIX`.
        map_location: Unused: the tensors are read onto the CPU, as mmpretrain and mmdet ask.

    Returns:
        ``{'state_dict': ..., 'meta': ...}`` in rapidnet_mm names.
    """
    from .checkpoints.loading import read_checkpoint, to_our_layout
    loaded = to_our_layout(read_checkpoint(filename), weights='ema')
    return {'state_dict': loaded.state_dict, 'meta': loaded.meta}


def load_from_unpublished(filename: str, map_location=None) -> dict:
    """mmengine's checkpoint loader for :data:`UNPUBLISHED_SCHEME`: always refuses."""
    name = filename[len(UNPUBLISHED_SCHEME):]
    deploy = re.fullmatch(r'rapidnet-(ti|s|m|b)-deploy_in1k', name)
    if deploy:
        trained = f'rapidnet-{deploy[1]}_3rdparty_in1k'
        raise UnpublishedWeightsError(
            f"{name}: the authors published no weights of the deploy form; fold theirs: "
            f"model = get_model('{trained}', pretrained=True), then "
            'rapidnet_mm.deploy.reparameterize.reparameterize_model(model) (the same outputs)')
    raise UnpublishedWeightsError(
        f'{name}: the authors published no weights for this model (only RapidNet_Ti/S/M/B.pth '
        "of the training form: the '*_3rdparty_in1k' names); build it without weights "
        '(pretrained=False) or pass the path of weights you trained (pretrained=PATH)')


def load_from_teacher_hub(filename: str, map_location=None) -> dict:
    """mmengine's checkpoint loader for the default teacher's Hub files (a training step of a
    plain Runner, which does not download it first as ``tools/train.py`` does): downloaded
    through :func:`~rapidnet_mm.checkpoints.hub.fetch_checkpoint` and read as a local teacher
    file."""
    return read_teacher_file(fetch_checkpoint(filename, instead=TEACHER_LOCAL_COPY))


# mmengine matches the prefixes as regexes, longest first
LOADERS = ((AUTHORS_PREFIX, load_from_authors_hub), (TEACHER_PREFIX, load_from_teacher_hub),
           (UNPUBLISHED_SCHEME, load_from_unpublished))


def _register_loaders() -> None:
    from mmengine.runner import CheckpointLoader
    for prefix, loader in LOADERS:
        existing = CheckpointLoader._schemes.get(prefix)
        if existing is not None and getattr(existing, '__module__', None) != __name__:
            raise ModelNameConflict(f'mmengine already reads {prefix} with '
                                    f'{existing.__module__}.{existing.__name__}')
        CheckpointLoader.register_scheme(prefixes=prefix, loader=loader, force=True)


def _our_entries(metafile: str) -> Dict[str, str]:
    """``{lower-case name: config}`` of the entries of ``metafile``."""
    import yaml
    with open(metafile) as f:
        models = yaml.safe_load(f)['Models']
    return {m['Name'].lower(): m['Config'] for m in models}


def register_model_hub() -> List[str]:
    """Register our ImageNet entries with mmpretrain and our weights loaders with mmengine.

    Returns:
        The names registered (lower case, as ``mmpretrain.list_models`` gives them).

    Raises:
        ModelNameConflict: one of our names already registered from another file.
    """
    from mmpretrain.apis import ModelHub

    _register_loaders()
    metafile = shipped_file(*METAFILE)
    root = osp.dirname(osp.dirname(osp.dirname(metafile)))
    ours = _our_entries(metafile)
    held = ModelHub._models_dict  # mmpretrain's registry of names (no public accessor)
    present = {name: held[name] for name in ours if name in held}
    foreign = [name for name, meta in present.items()
               if osp.realpath(meta.filepath) != osp.realpath(metafile)]
    if foreign:
        other = osp.abspath(present[foreign[0]].filepath)
        raise ModelNameConflict(f'mmpretrain already has a model named {foreign[0]!r} (from '
                                f'{other}); rapidnet_mm registers that name from {metafile}')
    if len(present) < len(ours):  # not yet registered (a second import finds all present)
        ModelHub.register_model_index(metafile, config_prefix=root)
    for name in ours:
        if held[name].weights is None:
            held[name].weights = UNPUBLISHED_SCHEME + name
    return sorted(ours)


__all__ = ['AUTHORS_PREFIX', 'ModelNameConflict', 'TEACHER_PREFIX', 'UNPUBLISHED_SCHEME',
           'UnpublishedWeightsError', 'load_from_authors_hub', 'load_from_teacher_hub',
           'load_from_unpublished', 'register_model_hub']
