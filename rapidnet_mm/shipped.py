"""Files that ship with rapidnet_mm (``configs/``, ``tools/``, ``model-index.yml``): in the
repository of an editable install, or in the copies a wheel holds in ``rapidnet_mm/.mim``
(setup.py). Below everything that needs them, ``import rapidnet_mm`` included."""
import os.path as osp

from .errors import MissingFileError

PACKAGE_DIR = osp.dirname(osp.abspath(__file__))


def shipped_file(*parts: str) -> str:
    """The path of a file that ships with rapidnet_mm (``configs/...``, ``model-index.yml``):
    from the repository of an editable install, else from the copies in the installed package.

    Raises:
        MissingFileError: the installation holds no such file.
    """
    for root in (osp.dirname(PACKAGE_DIR), osp.join(PACKAGE_DIR, '.mim')):
        path = osp.join(root, *parts)
        if osp.isfile(path):
            return path
    raise MissingFileError(f'rapidnet_mm ships no {"/".join(parts)}')


def config_file(*parts: str) -> str:
    """The path of a config that ships with rapidnet_mm, e.g. ``config_file('cls',
    'rapidnet_ti_in1k.py')``."""
    return shipped_file('configs', *parts)


__all__ = ['PACKAGE_DIR', 'config_file', 'shipped_file']
