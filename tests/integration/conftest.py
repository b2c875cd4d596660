"""Fixtures that run this pack inside a real ComfyUI server.

Skipped unless `COMFYUI_PATH` names a ComfyUI source tree and a Python for it is found
(`COMFYUI_PYTHON`, else `$COMFYUI_PATH/../venv/bin/python`, else the interpreter running pytest)
that has ComfyUI's and this pack's requirements installed.

    COMFYUI_PATH=/path/to/ComfyUI .venv/bin/python -m pytest -q tests/integration
"""
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from comfy_server import ComfyServer, ComfyUnavailable, locate_comfyui  # noqa: E402
from graphs import write_start_image  # noqa: E402
from model_files import build_model_cache, link_model_set  # noqa: E402

LOG_TAIL_CHARS = 6000


@pytest.fixture(scope="session")
def comfy_install():
    """The ComfyUI tree and interpreter to run, or a skip that says what is missing."""
    try:
        return locate_comfyui(os.environ)
    except ComfyUnavailable as reason:
        pytest.skip(str(reason))


@pytest.fixture(scope="session")
def wan21_model_cache(comfy_install, tmp_path_factory):
    """The folder of generated checkpoints (tiny models + full-size random VAE and ViT-H).

    `$WAN21_TEST_CACHE` keeps them between sessions (about 1.5 GB, a minute to generate);
    otherwise they live in this session's pytest temporary folder.
    """
    root = os.environ.get("WAN21_TEST_CACHE") or tmp_path_factory.getbasetemp() / "wan21_models"
    return build_model_cache(Path(root))


@pytest.fixture(scope="session")
def comfy_model_writer(wan21_model_cache):
    """Writes checkpoint files into `models/<folder>/` before the shared server starts.

    Returns a callable `(models_dir: pathlib.Path) -> None` that hard-links the model set of
    `model_files.MODEL_SET` (Comfy-Org names, plus files in the legacy `unet/` and `clip/`).
    Files can also be written later, while the server runs: ComfyUI rescans a folder whose
    modification time changed, so `comfy.models_dir / "vae" / name` shows up in the next prompt.
    """
    return lambda models_dir: link_model_set(wan21_model_cache, models_dir)


@pytest.fixture(scope="session")
def comfy_factory(comfy_install, tmp_path_factory):
    """Start extra servers: `comfy_factory(model_writer=None, extra_args=())` -> ComfyServer.

    Each gets its own base folder; all are stopped at the end of the session.
    """
    servers = []

    def start(model_writer=None, extra_args=()):
        base = tmp_path_factory.mktemp("comfyui")
        server = ComfyServer(comfy_install, base, pack_root=REPO_ROOT,
                             model_writer=model_writer, extra_args=extra_args)
        servers.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="session")
def comfy(comfy_factory, comfy_model_writer):
    """The shared ComfyUI server (CPU, `--cache-none`) with this pack linked into custom_nodes."""
    return comfy_factory(model_writer=comfy_model_writer)


@pytest.fixture(scope="session")
def start_image(comfy, tmp_path_factory):
    """Name of a 64x48 PNG uploaded to the shared server (LoadImage's `image` value)."""
    return comfy.upload_image(write_start_image(tmp_path_factory.mktemp("images") / "start_64x48.png"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the tail of the log of every server a failed test used."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for name, server in getattr(item, "funcargs", {}).items():
        if isinstance(server, ComfyServer):
            report.sections.append((f"ComfyUI log of `{name}` (tail)", server.log_text()[-LOG_TAIL_CHARS:]))
