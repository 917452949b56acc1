"""Importing the scripts of tools/ in tests (they are not a package)."""
import importlib.util
import os.path as osp
from types import ModuleType

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_tool(name: str) -> ModuleType:
    """Import ``tools/<name>.py`` (e.g. ``'train'``, ``'deployment/export'``) as a module, to call
    its ``main(argv)`` in-process, without putting tools/ on sys.path."""
    path = osp.join(REPO, 'tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location('tool_' + name.replace('/', '_'), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
