import os
import sys

# On a loaded machine torch's OpenMP threads spin while waiting and steal the cores from each
# other (and from the subprocesses some tests start): measured 28-49 s per Mask R-CNN step
# against 6.5-7.8 s with passive waiting. Must be set before torch is imported.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

# tests import helpers that live beside them (original_layout.py)
sys.path.insert(0, os.path.dirname(__file__))
