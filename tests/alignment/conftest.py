"""Puts this folder on sys.path for the shared clip helpers (alignment_clips.py)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
