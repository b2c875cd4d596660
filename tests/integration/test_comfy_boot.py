"""A real ComfyUI boots with this pack linked as a custom node and imports it cleanly."""
import os

PACK_NAME = "comfyui-wan21-i2v"


def test_server_boots_with_pack_linked(comfy):
    stats = comfy.system_stats()
    assert stats["system"]["comfyui_version"] == comfy.install.version
    assert [d["type"] for d in stats["devices"]] == ["cpu"]

    link = comfy.base_dir / "custom_nodes" / PACK_NAME
    assert link.is_symlink() and os.path.samefile(link, comfy.pack_root)


def test_pack_imported_without_failure(comfy):
    log = comfy.log_text()
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
LOADER_COMBOS = {  # folder -> (core loader node, its file input)
    "diffusion_models": ("UNETLoader", "unet_name"),
    "text_encoders": ("CLIPLoader", "clip_name"),
    "clip_vision": ("CLIPVisionLoader", "clip_name"),
    "upscale_models": ("UpscaleModelLoader", "model_name"),
}


def combo_options(spec):
    """Options of a combo input spec: V1 `[[...], {...}]` or V3 `["COMBO", {"options": [...]}]`."""
    return spec[1]["options"] if spec[0] == "COMBO" else spec[0]


def test_model_folders_are_the_temporary_ones(comfy):
    argv = comfy.system_stats()["system"]["argv"]
    if "--base-directory" in argv:
        assert argv[argv.index("--base-directory") + 1] == str(comfy.base_dir)
    for folder, (node, input_name) in LOADER_COMBOS.items():
        root = comfy.models_dir / folder
        expected = sorted(str(p.relative_to(root)) for p in root.rglob("*")
                          if p.is_file() and p.suffix.lower() in MODEL_EXTENSIONS)
        listed = combo_options(comfy.object_info(node)["input"]["required"][input_name])
        assert sorted(listed) == expected, (folder, listed)
