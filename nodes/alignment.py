"""Wan Frame Align: colour / brightness consistency over a clip (flicker, colour jitter, drift)."""
from __future__ import annotations

from wan21_core.alignment import DEFAULT_METHOD, DEFAULT_WINDOW, METHODS, align_frames

from .base import WanNode, tooltip

REFERENCES = ("window", "first", "image")


class WanFrameAlign(WanNode):
    DESCRIPTION = ("Aligns the colours of a clip over time. The default 'window' reference removes flicker and "
                   "colour jitter (each frame matched to a robust temporal average of the clip's own colour "
                   "statistics, shot cuts respected) and keeps slow, legitimate changes of light and content; "
                   "'first' or 'image' match every frame to one reference instead (stronger, but it also erases "
                   "real changes).")
    RETURN_TYPES = ("IMAGE",)
    OUTPUT_TOOLTIPS = ("The aligned frames [frames, H, W, 3], same size and count as the input.",)

    @classmethod
    def inputs(cls):
        return {"required": {
            "images": ("IMAGE", tooltip("The clip to align (e.g. from Wan VAE Decode or ComfyUI's VAE Decode).")),
            "reference": (list(REFERENCES), tooltip(
                "window: match each frame to the temporal average of its ±window neighbours (removes flicker, "
                "keeps slow changes); first: match every frame to frame 0; image: match every frame to the "
                "reference_image input (one image, or one per frame).", default="window")),
            "method": (list(METHODS), tooltip(
                "lab: mean and spread of L*, a*, b* (brightness, contrast, colour cast); mkl: RGB mean and "
                "covariance (also fixes channel mixing); histogram: per-channel histogram matching (also "
                "fixes tone curves, strongest).", default=DEFAULT_METHOD)),
            "window": ("INT", tooltip("Half-width of the temporal reference in frames (±window). Larger averages "
                                      "out slower flicker but follows quick light changes less.",
                                      default=DEFAULT_WINDOW, min=1, max=64)),
            "strength": ("FLOAT", tooltip("0 returns the input unchanged, 1 applies the full correction.",
                                          default=1.0, min=0.0, max=1.0, step=0.05)),
            "deflicker": ("INT", tooltip("Luma deflicker after the colour match (like ffmpeg deflicker, mode am): "
                                         "each frame's mean brightness set to the average over ±N frames. "
                                         "1 removes the flicker left in clipped highlights; larger values also "
                                         "flatten real brightness changes. 0 = off.",
                                         default=1, min=0, max=64)),
        }, "optional": {
            "reference_image": ("IMAGE", tooltip("The reference for reference = image: one image for all frames, or "
                                                 "as many images as frames (frame t matched to image t).")),
        }}

    def execute(self, images, reference, method, window, strength, deflicker, reference_image=None):
        if reference == "image":
            if reference_image is None:
                raise ValueError("Wan Frame Align: reference = image needs the reference_image input connected")
            reference = reference_image
        return (align_frames(images, reference=reference, method=method, window=window, strength=strength,
                             deflicker=deflicker),)
