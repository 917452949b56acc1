"""README.md and docs/: every repository path they name exists, every link (and its #anchor)
resolves, every ``rapidnet_mm.x.y`` they name imports, and every command they show names an
existing tool with options that tool accepts (read from its argument parser, in-process)."""
import argparse
import glob
import importlib
import inspect
import os.path as osp
import re
import sys
from functools import lru_cache
from typing import Dict, Iterator, List, Set, Tuple

import pytest
from tool_helpers import ROOT, load_tool

DOCS = ['README.md'] + sorted(osp.relpath(p, ROOT)
                              for p in glob.glob(osp.join(ROOT, 'docs', '*.md')))
# Top-level folders whose paths the docs name relative to the repository root.
TOP = ('tools', 'configs', 'rapidnet_mm', 'docs', 'tests', 'requirements', '.ci')
PATH = re.compile(r'(?<![\w./:~-])((?:%s)/[\w./*{},-]*)' % '|'.join(re.escape(t) for t in TOP))
# Made by `pip install -e .` (setup.py), so not in a fresh clone.
GENERATED = {'rapidnet_mm/.mim'}
DOTTED = re.compile(r'(?<![\w./])rapidnet_mm(?:\.\w+)+')
FILE_SUFFIXES = {'json', 'py', 'yml', 'yaml', 'md', 'txt', 'pth'}
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')
FENCE = re.compile(r'^```[^\n]*\n(.*?)^```', re.M | re.S)
SPAN = re.compile(r'`([^`\n]+)`')
TOOL = re.compile(r'^(?:\./)?(tools/[\w/]+\.py)$')


def read(doc: str) -> str:
    with open(osp.join(ROOT, doc)) as f:
        return f.read()


def split_code(text: str) -> Tuple[List[str], List[str], str]:
    """The fenced blocks, the inline code spans, and the prose with both taken out."""
    blocks = FENCE.findall(text)
    rest = FENCE.sub('', text)
    spans = SPAN.findall(rest)
    return blocks, spans, SPAN.sub(' ', rest)


def cut_token(token: str) -> str:
    """A path token without what follows it in prose: a comma outside braces, end punctuation."""
    depth = 0
    for i, ch in enumerate(token):
        depth += {'{': 1, '}': -1}.get(ch, 0)
        if ch == ',' and depth == 0:
            token = token[:i]
            break
    return token.rstrip('.,:;')


def expand(pattern: str) -> List[str]:
    """``a/{x,y}_*.py`` -> glob patterns ``a/x_*.py``, ``a/y_*.py``; ``{name}`` is a wildcard."""
    match = re.search(r'\{([^{}]*)\}', pattern)
    if not match:
        return [pattern]
    options = match.group(1).split(',') if ',' in match.group(1) else ['*']
    return [p for o in options
            for p in expand(pattern[:match.start()] + o + pattern[match.end():])]


def exists(path: str) -> bool:
    if path.rstrip('/') in GENERATED:
        return True
    return all(glob.glob(osp.join(ROOT, p)) for p in expand(path))


def repo_paths(doc: str) -> Set[str]:
    blocks, spans, prose = split_code(read(doc))
    text = '\n'.join(blocks + spans + [LINK.sub(' ', prose)])
    return {cut_token(m) for m in PATH.findall(text)} - {''}


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r'[^\w\- ]', '', heading.strip().lower())
    return text.replace(' ', '-')


@lru_cache(maxsize=None)
def anchors(doc: str) -> Set[str]:
    headings = re.findall(r'^#+ (.+)$', FENCE.sub('', read(doc)), re.M)
    return {slug(h) for h in headings}


def links(doc: str) -> Iterator[str]:
    _, _, prose = split_code(read(doc))
    for target in LINK.findall(prose):
        if not re.match(r'^[a-z]+:', target):
            yield target


def commands(doc: str) -> Iterator[str]:
    """Each shell command of the fenced blocks (continuation lines joined, comments dropped,
    split at ``&&``, ``;`` and ``|``) and each inline code span."""
    blocks, spans, _ = split_code(read(doc))
    for block in blocks:
        for line in block.replace('\\\n', ' ').splitlines():
            line = re.sub(r'(^|\s)#.*$', '', line)
            yield from (part for part in re.split(r'&&|;|\|\||(?<![|\w])\|(?![|\w])', line))
    yield from spans


def tool_calls(doc: str) -> Iterator[Tuple[str, List[str]]]:
    """(tool path, --options given) for every command that runs a tools/*.py script."""
    for command in commands(doc):
        tokens = [t.strip('[](),') for t in command.split()]
        for i, token in enumerate(tokens):
            match = TOOL.match(token)
            if match:
                flags = [t.split('=')[0] for t in tokens[i + 1:]
                         if t.startswith('--') and len(t) > 2]
                yield match.group(1), flags
                break


class Captured(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__()
        self.parser = parser


@lru_cache(maxsize=None)
def tool_options(tool: str) -> Set[str]:
    """The option strings of a tool's argument parser, caught when the tool parses."""
    module = load_tool(tool[len('tools/'):-len('.py')])
    entry = getattr(module, 'parse_args', None) or module.main
    original = argparse.ArgumentParser.parse_known_args

    def capture(self, *args, **kwargs):
        raise Captured(self)

    argparse.ArgumentParser.parse_known_args = capture
    try:
        entry(*([[]] if inspect.signature(entry).parameters else []))
    except Captured as caught:
        return {s for action in caught.parser._actions for s in action.option_strings}
    finally:
        argparse.ArgumentParser.parse_known_args = original
    raise AssertionError(f'{tool} did not parse any arguments')


def resolves(dotted: str) -> bool:
    parts = dotted.split('.')
    if parts[-1] in FILE_SUFFIXES:
        return True  # a file name such as rapidnet_mm.json
    for n in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module('.'.join(parts[:n]))
        except ImportError:
            continue
        for attr in parts[n:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


@pytest.mark.parametrize('doc', DOCS)
def test_every_repository_path_exists(doc):
    missing = sorted(p for p in repo_paths(doc) if not exists(p))
    assert not missing, f'{doc} names paths that do not exist: {missing}'


@pytest.mark.parametrize('doc', DOCS)
def test_every_link_and_anchor_resolves(doc):
    broken = []
    for target in links(doc):
        path, _, anchor = target.partition('#')
        file = osp.normpath(osp.join(osp.dirname(doc), path)) if path else doc
        if not osp.exists(osp.join(ROOT, file)):
            broken.append(target)
        elif anchor and file.endswith('.md') and anchor not in anchors(file):
            broken.append(target)
    assert not broken, f'{doc} links to what does not exist: {broken}'


@pytest.mark.parametrize('doc', DOCS)
def test_every_named_module_and_attribute_imports(doc):
    blocks, spans, _ = split_code(read(doc))
    names = set(DOTTED.findall('\n'.join(blocks + spans)))
    assert not sorted(n for n in names if not resolves(n)), doc


@pytest.mark.parametrize('doc', DOCS)
def test_every_command_runs_a_tool_with_options_it_has(doc):
    wrong: Dict[str, List[str]] = {}
    for tool, flags in tool_calls(doc):
        assert osp.isfile(osp.join(ROOT, tool)), f'{doc}: {tool} does not exist'
        unknown = [f for f in flags if f not in tool_options(tool)]
        if unknown:
            wrong.setdefault(tool, []).extend(unknown)
    assert not wrong, f'{doc} shows options the tools do not have: {wrong}'


def test_readme_starts_with_the_two_commands_ci_runs():
    """README's first block: the demo command, then the test command(s), which are exactly the
    lines .ci/run runs, in its order."""
    first_block = [line for line in FENCE.findall(read('README.md'))[0].splitlines()
                   if not line.startswith('#')]
    ci = [line for line in read('.ci/run').splitlines() if line.startswith('bash ')]
    assert ci[0] == 'bash tools/setup/setup_env.sh && .venv/bin/python -m pytest tests'
    assert first_block == ['bash tools/setup/setup_env.sh && .venv/bin/python tools/demo.py'] + ci


def test_readme_links_every_doc_page():
    linked = {osp.normpath(t.partition('#')[0]) for t in links('README.md')}
    assert set(DOCS[1:]) - linked == set()


def test_the_checker_catches_wrong_paths_options_and_anchors(tmp_path, monkeypatch):
    """The checks themselves: each fails on a wrong name and passes on the right one."""
    assert exists('tools/deployment/export.py') and not exists('tools/export_onnx.py')
    assert exists('configs/cls/rapidnet_{ti,s,m,b}_in1k.py')
    assert not exists('configs/cls/rapidnet_{ti,xl}_in1k.py')
    assert exists('configs/cls/rapidnet_{arch}_in1k.py') and exists('tools/dist_*.sh')
    assert cut_token('tools/train.py,') == 'tools/train.py'
    assert PATH.findall('see tools/test.py and github.com/x/tools/y.py') == ['tools/test.py']
    assert resolves('rapidnet_mm.models.arch.ARCH_SETTINGS')
    assert not resolves('rapidnet_mm.models.arch.NO_SUCH_TABLE')
    assert not resolves('rapidnet_mm.no_such_module')
    assert '--format' in tool_options('tools/deployment/export.py')
    assert '--budget-s' not in tool_options('tools/analysis_tools/gpu_check.py')
    assert slug('## 2.1 Core ML'.lstrip('# ')) == '21-core-ml'
    assert 'gpu-mmcv-with-its-cuda-ops' in anchors('docs/install.md')
    monkeypatch.setattr(sys.modules[__name__], 'ROOT', str(tmp_path))
    (tmp_path / 'x.md').write_text('Run `python tools/deployment/export.py C --formatt onnx`.\n')
    assert list(tool_calls('x.md')) == [('tools/deployment/export.py', ['--formatt'])]


def test_the_package_map_lists_every_module():
    """docs/DEVELOPING.md's module table has a row for every module of the package (its paths
    existing is checked above), so the map stays true of the code."""
    with open(osp.join(ROOT, 'docs', 'DEVELOPING.md')) as f:
        rows = set(re.findall(r'^\| `(rapidnet_mm/[\w/]+\.py)` \|', f.read(), flags=re.M))
    modules = {osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'rapidnet_mm', '**', '*.py'),
                                                      recursive=True)}
    assert modules - rows == set()
    assert len(modules) > 60
