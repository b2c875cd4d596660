"""The package skeleton: the plugin imports without ComfyUI and the core never imports ComfyUI."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
COMFY_MODULES = {"comfy", "comfy_extras", "comfy_api", "folder_paths", "server", "nodes", "execution"}


def test_plugin_exports_comfy_entry_points(plugin):
    assert isinstance(plugin.NODE_CLASS_MAPPINGS, dict)
    assert isinstance(plugin.NODE_DISPLAY_NAME_MAPPINGS, dict)
    assert plugin.WEB_DIRECTORY == "./web"
    assert set(plugin.NODE_DISPLAY_NAME_MAPPINGS) <= set(plugin.NODE_CLASS_MAPPINGS)


def test_core_never_imports_comfyui():
    offenders = []
    for path in (ROOT / "wan21_core").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in COMFY_MODULES]
    assert not offenders, offenders


def test_requirements_never_pin_torch():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        name = line.split("#")[0].strip().lower()
        assert not name.startswith(("torch", "torchvision")), f"requirements.txt must not constrain torch: {line}"


def test_core_lazy_public_api():
    import wan21_core
    for name in ("load_dit", "load_vae", "load_text_encoder", "load_image_encoder"):
        assert name in wan21_core.__all__
