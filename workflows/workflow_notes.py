"""The model file names and the Markdown notes of the example workflows (imported by build_workflows.py,
which puts the repository root on sys.path first)."""
from __future__ import annotations

from wan21_core.embedded import BUILTIN_NAME, COLOURS, DEMO
from wan21_core.sampling import AREA_480P, FPS, I2V_FRAMES, I2V_GUIDANCE, I2V_SHIFT, I2V_STEPS

REPACKAGED = "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files"

# Official Comfy-Org file names and their ComfyUI folders.
DIT_FILE = "wan2.1_i2v_480p_14B_fp16.safetensors"
T5_FILE = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
CLIP_FILE = "clip_vision_h.safetensors"
VAE_FILE = "wan_2.1_vae.safetensors"
ESRGAN_FILE = "RealESRGAN_x4plus.safetensors"
MODEL_FILES = {DIT_FILE: "diffusion_models", T5_FILE: "text_encoders", CLIP_FILE: "clip_vision", VAE_FILE: "vae"}
ESRGAN_URL = "https://huggingface.co/Comfy-Org/Real-ESRGAN_repackaged/resolve/main/" + ESRGAN_FILE

# The tiny demo's LoadImage file: the pack's wan21_core/embedded/weights/demo_start.png, copied into ComfyUI/input.
TINY_DEMO_IMAGE = "wan21_tiny_demo_start.png"

FILES_TABLE = (
    "| file | put it in |\n|---|---|\n"
    f"| [{DIT_FILE}]({REPACKAGED}/diffusion_models/{DIT_FILE}) | `ComfyUI/models/diffusion_models/` |\n"
    f"| [{T5_FILE}]({REPACKAGED}/text_encoders/{T5_FILE}) | `ComfyUI/models/text_encoders/` |\n"
    f"| [{CLIP_FILE}]({REPACKAGED}/clip_vision/{CLIP_FILE}) | `ComfyUI/models/clip_vision/` |\n"
    f"| [{VAE_FILE}]({REPACKAGED}/vae/{VAE_FILE}) | `ComfyUI/models/vae/` |\n")

SETTINGS = (f"Official Wan2.1 480p settings: area {AREA_480P // 480}×480 (the start image's aspect ratio is kept), "
            f"{I2V_FRAMES} frames = 5 s at {FPS} fps, {I2V_STEPS} steps, guidance {I2V_GUIDANCE:g}, "
            f"shift {I2V_SHIFT[AREA_480P]:g}, UniPC, and the official Chinese negative prompt.")

MODELS_NOTE = (
    "## Wan2.1 image-to-video, 480p\n\n"
    "Download the four model files (Comfy-Org repackaged) into ComfyUI's model folders:\n\n" + FILES_TABLE +
    "\nSmaller alternatives work in the same loaders: `wan2.1_i2v_480p_14B_fp8_scaled.safetensors` "
    "(diffusion model) and `umt5_xxl_fp16.safetensors` (text encoder); the official release's `.pth` files too. "
    "For 720p use `wan2.1_i2v_720p_14B_*` with width 1280, height 720 and shift 5.\n\n"
    "Then pick a start image in **Load Image**, write the prompt and press Run.\n\n" + SETTINGS)

MIXED_NOTE = (
    "## Wan2.1 image-to-video with ComfyUI's own loaders and encoders\n\n"
    "ComfyUI's **Load CLIP** (type `wan`), **CLIP Text Encode**, **Load CLIP Vision**, **CLIP Vision Encode** "
    "(crop `none`, the official squash to 224×224), **Load VAE** and **VAE Decode** feed this pack's fusion, "
    "sampler and upscaler. The sampler needs this pack's **Wan DiT Loader** (ComfyUI's Load Diffusion Model "
    "gives a MODEL for KSampler, not a DiT for Wan Sampler).\n\n" + FILES_TABLE +
    f"| [{ESRGAN_FILE}]({ESRGAN_URL}) | `ComfyUI/models/upscale_models/` |\n\n"
    "Any single-image upscale model that **Load Upscale Model** reads works as the upscaler's x2 stage; "
    "a x4 model's output is resized to exactly x2.\n\n" + SETTINGS)

UPSCALE_NOTE = (
    "## Wan2.1 image-to-video, 480p, then x2 upscaling\n\n" + FILES_TABLE +
    "\nThe built-in x2 cascade ships with this pack (no download). Wan Cascaded Upscaler works in tiles, so "
    "memory stays bounded; `x4` runs the x2 stages twice.\n\n" + SETTINGS)

TINY_NOTE = (
    "## Wan2.1-tiny, the built-in demo model\n\n"
    f"**Nothing to download.** The four loaders use **{BUILTIN_NAME}**: a small model with the Wan2.1 "
    "image-to-video architecture that ships inside this pack (`wan21_core/embedded/weights/`). It knows only a "
    "toy world: one or two flat-coloured circles, squares and triangles "
    f"({', '.join(COLOURS)}) on plain, gradient or noisy backgrounds, seen at "
    f"{DEMO.size}×{DEMO.size} for {DEMO.frames} frames.\n\n"
    "Prompts it was trained on:\n\n"
    "- `the red circle moves to the right` (or `to the left`), `the white triangle moves up` (or `down`)\n"
    "- `the blue square grows`, `the green triangle shrinks`\n"
    "- `the yellow circle turns white` (a change of colour)\n"
    "- `the camera pans left` (or right)\n"
    "- `nothing moves`\n\n"
    f"**Start image:** copy `wan21_core/embedded/weights/demo_start.png` of this pack (under "
    f"`ComfyUI/custom_nodes/`) into `ComfyUI/input/` as `{TINY_DEMO_IMAGE}`, or pick any image in **Load Image**; "
    f"it is stretched to {DEMO.size}×{DEMO.size}, the size the model was trained at, and scenes like the toy "
    "world's work best.\n\n"
    f"Settings of `python -m wan21_core demo`: {DEMO.size}×{DEMO.size}, {DEMO.frames} frames at {FPS} fps, "
    f"{DEMO.steps} steps, guidance {DEMO.guidance:g}, shift {DEMO.shift:g}, {DEMO.solver}, seed 0 (fixed), the "
    "official negative prompt, every model on the CPU in the dtypes the command line uses, so this graph gives "
    "the command line's frames. A run takes well under a minute on a CPU.")
