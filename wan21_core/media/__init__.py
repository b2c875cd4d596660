"""Images in and video out: image batches in ComfyUI's [B, H, W, C] layout, mp4 / PNG / WebP writers."""
from .images import resize_bicubic, to_image_batch, to_signed, to_unit
from .video import write_mp4, write_png_frames, write_webp

__all__ = ["resize_bicubic", "to_image_batch", "to_signed", "to_unit", "write_mp4", "write_png_frames", "write_webp"]
