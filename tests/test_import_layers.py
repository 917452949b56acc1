"""The import contracts of .importlinter (layers, no import circle, what models/, deploy/ and
checkpoints/ may import) hold, and a circle put back is caught."""
import os.path as osp
import re
import shutil
import subprocess
import sys

import pytest
from tool_helpers import ROOT

pytestmark = pytest.mark.core

# import-linter's command line, run by this interpreter (--no-cache: nothing written beside the
# package)
LINT_IMPORTS = [sys.executable, '-c', 'from importlinter.cli import lint_imports_command; '
                'lint_imports_command()', '--no-cache', '--no-logo']


def lint_imports(root: str) -> subprocess.CompletedProcess:
    """``lint-imports`` on the rapidnet_mm under ``root`` with ``root``'s .importlinter."""
    return subprocess.run(LINT_IMPORTS, cwd=root, capture_output=True, text=True, timeout=300)


def contract_names() -> list:
    with open(osp.join(ROOT, '.importlinter')) as f:
        return re.findall(r'^name = (.+)$', f.read(), flags=re.M)


def test_every_contract_is_kept():
    result = lint_imports(ROOT)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    names = contract_names()
    assert len(names) == 6
    for name in names:
        assert f'{name} KEPT' in output, output
    assert 'Contracts: 6 kept, 0 broken.' in output


def test_a_circle_through_a_function_level_import_breaks_the_contracts(tmp_path):
    """The circle the int8 latency once closed: deploy/int8.py -> analysis/benchmark.py ->
    deploy/runtime.py -> the exporters -> deploy/int8.py, through an import inside a function."""
    shutil.copy(osp.join(ROOT, '.importlinter'), tmp_path)
    shutil.copytree(osp.join(ROOT, 'rapidnet_mm'), tmp_path / 'rapidnet_mm',
                    ignore=shutil.ignore_patterns('__pycache__', '.mim'))
    int8 = tmp_path / 'rapidnet_mm' / 'deploy' / 'int8.py'
    int8.write_text(int8.read_text() + '\n\ndef _timing():\n'
                    '    from ..analysis.benchmark import Subject  # noqa: F401\n')
    result = lint_imports(str(tmp_path))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    broken = set(re.findall(r'^(.+) BROKEN$', output, flags=re.M))
    assert broken == {
        'rapidnet_mm is layered: each module imports only the layers below it',
        'No import circle between the modules of any package of rapidnet_mm',
        'deploy/ imports neither the train, test and inference entry code nor analysis/',
        'Nothing needed to train, evaluate or export imports analysis/'}, output
    assert '- .deploy -> .analysis (1 import)' in output, output
