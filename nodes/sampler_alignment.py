"""Wan Sampler Alignment: frame alignment and context windows for the Wan Sampler (its optional input)."""
from __future__ import annotations

from wan21_core.sampling import ContextWindows, FrameAlignment

from .base import WAN_ALIGNMENT, WanNode, tooltip


class WanSamplerAlignment(WanNode):
    DESCRIPTION = ("Temporal coherence inside the Wan Sampler, in the latent domain: keeps the first frame on the "
                   "start image, steadies colour and brightness over the clip without matching every frame to "
                   "the first, and samples clips longer than 81 frames in overlapping context windows. Connect "
                   "it to the Wan Sampler's 'alignment' input; at strength 0 and context_frames 0 it changes "
                   "nothing.")
    RETURN_TYPES = (WAN_ALIGNMENT,)
    OUTPUT_TOOLTIPS = ("The alignment and context-window settings, for the Wan Sampler's 'alignment' input.",)

    @classmethod
    def inputs(cls):
        fraction = dict(min=0.0, max=1.0, step=0.01, round=0.001)
        return {
            "required": {
                "anchor_strength": ("FLOAT", tooltip(
                    "How strongly the first latent frame (or every fully given start frame, e.g. the last frames "
                    "of a previous clip) is held on the encoded start image at each step. 0 = off.",
                    default=0.0, **fraction)),
                "anchor_start": ("FLOAT", tooltip(
                    "Where in the run the anchoring begins, as a fraction of the steps (0 = first step).",
                    default=0.0, **fraction)),
                "anchor_end": ("FLOAT", tooltip(
                    "Where in the run the anchoring stops, as a fraction of the steps (1 = through the last step).",
                    default=1.0, **fraction)),
                "stats_strength": ("FLOAT", tooltip(
                    "How strongly each latent frame's per-channel brightness and contrast are pulled to their "
                    "slow trend from the start image: removes flicker and jumps, keeps slow light changes. 0 = off. "
                    "Experimental: on Wan2.1-tiny it raised the colour drift (docs/benchmarks.md).",
                    default=0.0, **fraction)),
                "stats_start": ("FLOAT", tooltip(
                    "Where the statistics alignment begins, as a fraction of the steps (late steps work best).",
                    default=0.5, **fraction)),
                "stats_end": ("FLOAT", tooltip(
                    "Where the statistics alignment stops, as a fraction of the steps.", default=1.0, **fraction)),
                "stats_window": ("INT", tooltip(
                    "Half-width of the trend's time window in latent frames (1 latent frame = 4 video frames).",
                    default=3, min=1, max=64)),
                "context_frames": ("INT", tooltip(
                    "Context windows for long clips: video frames per window (81 = the trained length; 4n+1). "
                    "0 = off (the whole clip at once).", default=0, min=0, max=1001, step=4)),
                "context_overlap": ("INT", tooltip(
                    "Video frames shared by neighbouring windows, blended smoothly (rounded up to multiples of 4).",
                    default=20, min=0, max=1000, step=4)),
                "closed_loop": ("BOOLEAN", tooltip(
                    "Let the windows wrap from the end back to the start, for a looping clip.", default=False)),
            },
        }

    def execute(self, anchor_strength, anchor_start, anchor_end, stats_strength, stats_start, stats_end,
                stats_window, context_frames, context_overlap, closed_loop):
        alignment = FrameAlignment(anchor_strength=anchor_strength, anchor_start=anchor_start, anchor_end=anchor_end,
                                   stats_strength=stats_strength, stats_start=stats_start, stats_end=stats_end,
                                   stats_window=stats_window)
        windows = None
        if context_frames:
            windows = ContextWindows.from_video_frames(context_frames, context_overlap, closed_loop)
        return ({"alignment": alignment, "windows": windows},)
