"""The repository in tests: its root (the one place it is computed), its configs, and the
scripts of tools/ imported as modules (they are not a package)."""
import glob
import importlib.util
import os.path as osp
from types import ModuleType

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def all_configs():
    """Every config file under configs/ (no helper files such as _base_/ exist; skipped if any),
    relative to the root."""
    paths = glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
    return sorted(osp.relpath(p, ROOT) for p in paths if '_base_' not in p)


def load_tool(name: str) -> ModuleType:
    """Import ``tools/<name>.py`` (e.g. ``'train'``, ``'deployment/export'``) as a module, to call
    its ``main(argv)`` in-process, without putting tools/ on sys.path."""
    path = osp.join(ROOT, 'tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location('tool_' + name.replace('/', '_'), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
