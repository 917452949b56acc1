import os
import sys

# tests import helpers that live beside them (original_layout.py)
sys.path.insert(0, os.path.dirname(__file__))
