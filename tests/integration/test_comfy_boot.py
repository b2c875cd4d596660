"""A real ComfyUI boots with this pack linked as a custom node, imports it cleanly and lists its
nodes, their documentation and the model files of the temporary model folders."""
import os
from pathlib import Path

import model_files as mf
from graphs import combo_options, saved_files, tiny_pack_graph
from model_files import place_file
from wan21_core.embedded import BUILTIN_NAME, builtin_available

PACK_NAME = "comfyui-wan21-i2v"


def test_server_boots_with_pack_linked(comfy):
    stats = comfy.system_stats()
    assert stats["system"]["comfyui_version"] == comfy.install.version
    assert [d["type"] for d in stats["devices"]] == ["cpu"]

    link = comfy.base_dir / "custom_nodes" / PACK_NAME
    assert link.is_symlink() and os.path.samefile(link, comfy.pack_root)


def test_pack_imported_without_failure(comfy):
    log = comfy.log_text().split("Starting server", 1)[0]      # start-up only, before any prompt ran
    import_lines = [line for line in log.splitlines() if PACK_NAME in line and "seconds" in line]
    assert import_lines, f"pack {PACK_NAME} not listed in the custom-node import times:\n{log[-3000:]}"
    assert not any("IMPORT FAILED" in line for line in import_lines), import_lines
    pack_frames = [line for line in log.splitlines() if 'File "' in line and PACK_NAME in line]
    assert not pack_frames, f"traceback through the pack in the server log:\n{log[-3000:]}"


def test_object_info_lists_core_and_pack_nodes(comfy, plugin):
    info = comfy.object_info()
    assert "KSampler" in info and "WanImageToVideo" in info
    for name in plugin.NODE_CLASS_MAPPINGS:
        assert name in info, f"{name} exported by the pack but missing from /object_info"
        assert info[name]["python_module"] == f"custom_nodes.{PACK_NAME}"
    assert comfy.object_info("NoSuchNode_wan21") == {}


MODEL_EXTENSIONS = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
FOLDERS = {  # ComfyUI folder name -> its folders under models/ (legacy alias first, as ComfyUI lists them)
    "diffusion_models": ("unet", "diffusion_models"),
    "text_encoders": ("text_encoders", "clip"),
    "clip_vision": ("clip_vision",),
    "vae": ("vae",),
    "upscale_models": ("upscale_models",),
}
CORE_LOADERS = {  # folder -> (core loader node, its file input)
    "diffusion_models": ("UNETLoader", "unet_name"),
    "text_encoders": ("CLIPLoader", "clip_name"),
    "clip_vision": ("CLIPVisionLoader", "clip_name"),
    "vae": ("VAELoader", "vae_name"),
    "upscale_models": ("UpscaleModelLoader", "model_name"),
}
PACK_LOADERS = {  # folder -> (pack loader node, its file input)
    "diffusion_models": ("WanDiTLoader", "dit_name"),
    "text_encoders": ("WanT5Loader", "t5_name"),
    "clip_vision": ("WanImageEncoderLoader", "clip_name"),
    "vae": ("WanVAELoader", "vae_name"),
    "upscale_models": ("WanUpscalerLoader", "model_name"),
}


def files_in(comfy, folder: str) -> list[str]:
    """Model files of a ComfyUI folder name on disk, relative to their folder (legacy ones too)."""
    names = set()
    for sub in FOLDERS[folder]:
        root = comfy.models_dir / sub
        names |= {str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and p.suffix.lower() in MODEL_EXTENSIONS}
    return sorted(names)


def test_model_folders_are_the_temporary_ones(comfy):
    argv = comfy.system_stats()["system"]["argv"]
    if "--base-directory" in argv:
        assert argv[argv.index("--base-directory") + 1] == str(comfy.base_dir)
    for folder, (node, input_name) in CORE_LOADERS.items():
        listed = combo_options(comfy.object_info(node)["input"]["required"][input_name])
        if node == "VAELoader":                     # also offers "pixel_space" and TAESD entries
            listed = [n for n in listed if Path(n).suffix.lower() in MODEL_EXTENSIONS]
        assert sorted(listed) == files_in(comfy, folder), (folder, listed)


def test_pack_loaders_list_the_model_folders_including_legacy(comfy):
    for folder, (node, input_name) in PACK_LOADERS.items():
        listed = combo_options(comfy.object_info(node)["input"]["required"][input_name])
        on_disk = files_in(comfy, folder)
        assert [n for n in listed if not n.startswith("built-in:") and n != BUILTIN_NAME] == on_disk, (node, listed)
        if node != "WanUpscalerLoader":     # the built-in Wan2.1-tiny (when trained), after the folder's files
            assert (listed[-1] == BUILTIN_NAME) == builtin_available(), (node, listed)
    dits = combo_options(comfy.object_info("WanDiTLoader")["input"]["required"]["dit_name"])
    t5s = combo_options(comfy.object_info("WanT5Loader")["input"]["required"]["t5_name"])
    assert mf.LEGACY_DIT in dits and mf.DIT_I2V in dits      # models/unet + models/diffusion_models
    assert mf.LEGACY_T5 in t5s and mf.T5 in t5s              # models/clip + models/text_encoders


def test_new_model_file_appears_without_restart(comfy):
    target = comfy.models_dir / "vae" / "added_later.safetensors"
    place_file(comfy.models_dir / "vae" / mf.TINY_VAE, target)
    try:
        listed = combo_options(comfy.object_info("WanVAELoader")["input"]["required"]["vae_name"])
        assert "added_later.safetensors" in listed
    finally:
        target.unlink()


def test_every_pack_node_is_documented(comfy, plugin):
    info = comfy.object_info()
    for name in plugin.NODE_CLASS_MAPPINGS:
        node = info[name]
        assert node["category"] == "Wan2.1", (name, node["category"])
        assert len(node["description"]) > 20, (name, node["description"])
        assert node["display_name"] == plugin.NODE_DISPLAY_NAME_MAPPINGS[name]
        inputs = {**node["input"].get("required", {}), **node["input"].get("optional", {})}
        assert inputs, name
        for input_name, spec in inputs.items():
            options = spec[1] if len(spec) > 1 else {}
            assert options.get("tooltip"), f"{name}.{input_name} has no tooltip"
        assert len(node["output_tooltips"]) == len(node["output"]), name
        assert all(node["output_tooltips"]), name


def test_symlinked_model_file_loads(comfy, start_image, wan21_model_cache):
    # Model folders often hold symlinks to a shared drive; ComfyUI lists and loads them.
    link = comfy.models_dir / "vae" / "linked_tiny_vae.safetensors"
    link.symlink_to(wan21_model_cache / mf.MODEL_SET[f"vae/{mf.TINY_VAE}"])
    try:
        g, nodes = tiny_pack_graph(start_image)
        prompt = g.prompt()
        prompt[nodes["vae"].id]["inputs"]["vae_name"] = link.name
        outputs = comfy.run(prompt, timeout=300)
        assert saved_files(comfy, outputs, nodes["save"].id)
    finally:
        link.unlink()
