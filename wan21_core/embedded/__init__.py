"""Wan2.1-tiny, the embedded model: the synthetic world it is trained on and its staged training
(`python -m wan21_core.embedded`; the VAE stage so far)."""
from .world import ACTIONS, COLOURS, SHAPES, Scene, prompt_of, render_clip, sample_scene

__all__ = ["ACTIONS", "COLOURS", "SHAPES", "Scene", "prompt_of", "render_clip", "sample_scene"]
