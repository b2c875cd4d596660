"""Every API-format workflow in workflows/ runs through `POST /prompt` to a saved, decodable video.

The files are run as they are, except for values patched in memory for speed and for this
machine: the test image, 64x48 px, 9 frames, 2 steps, and model files that cannot exist here
(see `patch_for_test` and `swap_native_text_encoder`). To keep the run short, workflows in
TINY_ENCODER_WORKFLOWS give this pack's image-encoder and VAE loaders the tiny files: the full-size
ViT-H and VAE already run through those loaders in wan21_i2v, and these workflows differ from it
only after the decode. The built-in model's demo (UNPATCHED) runs unpatched in test_tiny_demo.py.
"""
import json
from pathlib import Path

import pytest

import model_files as mf
from graphs import HEIGHT, LENGTH, STEPS, WIDTH, saved_files, video_info

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
EXPECTED = ("wan21_i2v", "wan21_i2v_mixed", "wan21_i2v_upscale", "wan21_tiny_demo")
UNPATCHED = ("wan21_tiny_demo",)    # small already: runs exactly as committed in test_tiny_demo.py
API_FILES = sorted(WORKFLOWS.rglob("*.api.json"))
PATCHED_FILES = [p for p in API_FILES if p.name[: -len(".api.json")] not in UNPATCHED]
BUILTIN_UPSCALERS_PRESENT = all(
    (Path(__file__).resolve().parents[2] / "wan21_core" / "weights" / name).is_file()
    for name in ("upscale_cascade_psnr.safetensors", "upscale_cascade_adversarial.safetensors"))
UPSCALE_FACTORS = {"x2": 2, "x4": 4, "x8": 8}
TINY_ENCODER_WORKFLOWS = ("wan21_i2v_upscale",)
TINY_FILES = {("WanImageEncoderLoader", "clip_name"): mf.TINY_CLIP_VISION, ("WanVAELoader", "vae_name"): mf.TINY_VAE}


def workflow_name(path: Path) -> str:
    return path.name[: -len(".api.json")]


def test_expected_workflows_exist(comfy_install):
    names = {workflow_name(p) for p in API_FILES}
    assert set(EXPECTED) <= names, f"missing API workflows: {sorted(set(EXPECTED) - names)} in {WORKFLOWS}"
    for name in EXPECTED:
        assert (WORKFLOWS / f"{name}.json").is_file(), f"no UI-format workflows/{name}.json"


def swap_native_text_encoder(prompt: dict) -> list[str]:
    """Replace native CLIPLoader / CLIPTextEncode by this pack's Wan T5 Loader / Text Encode.

    ComfyUI's CLIPLoader(type="wan") only accepts the full umT5-XXL (24 layers x 4096, 5.7 B
    parameters, 6.7-11 GB): a smaller umT5 is detected as T5-base and routed to another model class
    (size mismatch). No such file can be made here, so the mixed workflow runs with exactly those
    nodes swapped and the file name kept; every other node runs as in the file. Returns the ids.
    """
    swapped = []
    for node_id, node in prompt.items():
        inputs = node["inputs"]
        if node["class_type"] == "CLIPLoader":
            node["class_type"] = "WanT5Loader"
            node["inputs"] = {"t5_name": inputs["clip_name"], "dtype": "fp32", "device": "cpu"}
            swapped.append(node_id)
        elif node["class_type"] == "CLIPTextEncode":
            node["class_type"] = "WanT5TextEncode"
            node["inputs"] = {"t5": inputs["clip"], "text": inputs["text"]}
            swapped.append(node_id)
    return swapped


def patch_for_test(prompt: dict, image_name: str, upscale_files: set) -> None:
    """Small sizes and steps, the uploaded image, and test models for files that cannot exist here.

    upscale_files: the file names in the server's models/upscale_models.
    """
    for node in prompt.values():
        kind, inputs = node["class_type"], node["inputs"]
        if kind in ("WanFusionConditioning", "WanImageToVideo"):
            inputs.update(width=WIDTH, height=HEIGHT, length=LENGTH)
            if "size_mode" in inputs:
                inputs["size_mode"] = "exact"
        elif kind in ("WanSampler", "KSampler"):
            inputs["steps"] = STEPS
        elif kind == "LoadImage":
            inputs["image"] = image_name
        elif kind == "UpscaleModelLoader" and inputs["model_name"] not in upscale_files:
            inputs["model_name"] = mf.UPSCALE_STAGE          # e.g. RealESRGAN_x4plus: any spandrel model
        elif kind == "WanUpscalerLoader" and inputs["model_name"].startswith("built-in:") \
                and not BUILTIN_UPSCALERS_PRESENT:
            inputs["model_name"] = mf.UPSCALE_STAGE          # the shipped cascade weights are not built yet


def use_tiny_encoders(prompt: dict) -> None:
    """This pack's CLIP-vision and VAE loaders read the tiny files (ComfyUI's loaders could not)."""
    for node in prompt.values():
        for (kind, name), tiny in TINY_FILES.items():
            if node["class_type"] == kind:
                node["inputs"][name] = tiny


def expected_size(prompt: dict) -> tuple[int, int]:
    factor = 1
    for node in prompt.values():
        if node["class_type"] == "WanCascadedUpscaler":
            factor *= UPSCALE_FACTORS[node["inputs"]["mode"]]
        elif node["class_type"] == "ImageUpscaleWithModel":
            factor *= 2                                       # the test stage is x2
    return WIDTH * factor, HEIGHT * factor


@pytest.mark.parametrize("path", PATCHED_FILES, ids=workflow_name)
def test_workflow_runs_to_a_video(comfy, start_image, path):
    prompt = json.loads(path.read_text(encoding="utf-8"))
    swapped = swap_native_text_encoder(prompt)
    if workflow_name(path) == "wan21_i2v_mixed":
        assert swapped, "the mixed workflow is expected to use ComfyUI's CLIPLoader + CLIPTextEncode"
    patch_for_test(prompt, start_image, {p.name for p in (comfy.models_dir / "upscale_models").iterdir()})
    if workflow_name(path) in TINY_ENCODER_WORKFLOWS:
        use_tiny_encoders(prompt)
    savers = [i for i, n in prompt.items() if n["class_type"] in ("SaveVideo", "SaveWEBM", "SaveAnimatedWEBP")]
    assert savers, f"{path.name} saves no video"

    outputs = comfy.run(prompt, timeout=900)

    for node_id in savers:
        (video,) = saved_files(comfy, outputs, node_id)
        assert video.is_file() and video.stat().st_size > 0
        frames, width, height = video_info(video)
        assert frames == LENGTH, (video.name, frames)
        assert (width, height) == expected_size(prompt), (video.name, width, height)
