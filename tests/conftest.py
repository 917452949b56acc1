import os
import sys

import pytest

# On a loaded machine torch's OpenMP threads spin while waiting and steal the cores from each
# other (and from the subprocesses some tests start): measured 28-49 s per Mask R-CNN step
# against 6.5-7.8 s with passive waiting. Must be set before torch is imported.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
# No test may reach the internet: huggingface_hub (the configs' weight URLs, timm's pretrained)
# reads only its cache, unless a test's Hub stand-in on 127.0.0.1 (hub_standin.py) says otherwise.
os.environ['HF_HUB_OFFLINE'] = '1'

# tests import helpers that live beside them (tool_helpers.py, original_layout.py, ...)
sys.path.insert(0, os.path.dirname(__file__))

# the shared fixtures: `hub`, the Hugging Face Hub stand-in on 127.0.0.1
from hub_standin import hub  # noqa: E402,F401


@pytest.fixture(autouse=True)
def isolated_default_scope():
    """Each test starts with the registry scope the session started with (none).

    A Runner or init_default_scope in one test would otherwise stay the process-wide default and
    decide which registry later tests build from (an 'mmengine' scope left by a Runner made
    mmpretrain's ImageClassifier fail to find ClsDataPreprocessor). mmengine has no public way to
    drop a DefaultScope, so the manager's instance table is restored.
    """
    from mmengine.registry import DefaultScope
    saved = DefaultScope._instance_dict.copy()
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)
