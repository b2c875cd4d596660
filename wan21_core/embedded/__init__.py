"""Wan2.1-tiny, the embedded model: the synthetic world it is trained on, its staged training
(`python -m wan21_core.embedded train DIR`) and its built-in files (`builtin_path`)."""
from .builtin import BUILTIN_NAME, DEMO, builtin_available, builtin_path, builtin_paths, training_summary
from .world import ACTIONS, COLOURS, SHAPES, Scene, demo_scene, prompt_of, render_clip, sample_scene

__all__ = ["ACTIONS", "BUILTIN_NAME", "COLOURS", "DEMO", "SHAPES", "Scene", "builtin_available", "builtin_path",
           "builtin_paths", "demo_scene", "prompt_of", "render_clip", "sample_scene", "training_summary"]
