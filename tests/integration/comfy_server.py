"""Start a real ComfyUI server in a throw-away folder and talk to it over HTTP and WebSocket.

Plain standard-library Python: nothing here imports ComfyUI, so this module loads in any test
environment. The server itself runs under ComfyUI's own interpreter (`ComfyInstall.python`).

Layout of the throw-away base folder (passed as `--base-directory`)::

    base/
      models/{diffusion_models,text_encoders,clip_vision,vae,upscale_models}/
      custom_nodes/<pack_name> -> the repository root (symlink)
      input/  output/  temp/  user/
      comfyui.log            (the server's stdout and stderr)
"""
from __future__ import annotations

import json
import mimetypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from comfy_events import EventStream

MODEL_FOLDERS = ("diffusion_models", "text_encoders", "clip_vision", "vae", "upscale_models")
PACK_NAME = "comfyui-wan21-i2v"

# Top-level modules ComfyUI (requirements.txt) and this pack (requirements.txt) import.
REQUIRED_MODULES = (
    "torch", "torchvision", "torchsde", "numpy", "einops", "transformers", "tokenizers",
    "sentencepiece", "safetensors", "aiohttp", "yarl", "yaml", "PIL", "scipy", "tqdm", "psutil",
    "alembic", "sqlalchemy", "av", "spandrel", "comfyui_frontend_package", "ftfy",
)

ModelWriter = Callable[[Path], None]
"""Called once with `base/models` before the server starts; writes checkpoint files there."""


class ComfyUnavailable(Exception):
    """No usable ComfyUI installation; the message says why (used as the pytest skip reason)."""


class ComfyError(RuntimeError):
    """A prompt was rejected by validation or failed while executing.

    `status` is the HTTP status of `POST /prompt` (None for execution failures), `payload` the
    server's JSON (validation) or the history entry (execution), `node_id`/`node_type` the
    failing node where known, `exception_message` the node's own error text (execution errors).
    """

    def __init__(self, message: str, payload: Any = None, status: Optional[int] = None,
                 node_id: Optional[str] = None, node_type: Optional[str] = None,
                 exception_message: Optional[str] = None):
        super().__init__(message)
        self.payload = payload
        self.status = status
        self.node_id = node_id
        self.node_type = node_type
        self.exception_message = exception_message


@dataclass(frozen=True)
class ComfyInstall:
    """A ComfyUI source tree and the Python interpreter whose packages satisfy it."""

    path: Path
    python: str

    @property
    def version(self) -> str:
        text = (self.path / "comfyui_version.py").read_text(encoding="utf-8")
        return text.split("__version__", 1)[1].split("=", 1)[1].strip().strip("\"'").splitlines()[0]

    def supports_flag(self, flag: str) -> bool:
        """Whether `comfy/cli_args.py` declares `flag` (read as text, ComfyUI is never imported)."""
        cli = (self.path / "comfy" / "cli_args.py").read_text(encoding="utf-8")
        return f'"{flag}"' in cli or f"'{flag}'" in cli


def _candidate_pythons(comfy_path: Path, environ) -> list[str]:
    if environ.get("COMFYUI_PYTHON"):
        return [environ["COMFYUI_PYTHON"]]
    sibling = comfy_path.parent / "venv" / "bin" / "python"
    return [str(sibling), sys.executable] if sibling.exists() else [sys.executable]


def _missing_modules(python: str) -> list[str]:
    """Modules from REQUIRED_MODULES that `python` cannot find (found, not imported: fast)."""
    code = ("import importlib.util as u, json, sys; "
            f"print(json.dumps([m for m in {list(REQUIRED_MODULES)!r} if u.find_spec(m) is None]))")
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [f"<cannot run {python}: {exc}>"]
    if done.returncode != 0:
        return [f"<{python} failed: {done.stderr.strip()[-300:]}>"]
    return json.loads(done.stdout.strip().splitlines()[-1])


def locate_comfyui(environ=os.environ) -> ComfyInstall:
    """Find ComfyUI from `COMFYUI_PATH` and a Python for it, or raise ComfyUnavailable.

    The interpreter is `COMFYUI_PYTHON`, else `$COMFYUI_PATH/../venv/bin/python`, else the
    current one; the first whose site-packages hold ComfyUI's and this pack's requirements wins.
    """
    raw = environ.get("COMFYUI_PATH")
    if not raw:
        raise ComfyUnavailable("COMFYUI_PATH is not set (point it at a ComfyUI source tree to run "
                               "the integration tests)")
    path = Path(raw).expanduser().resolve()
    if not (path / "main.py").is_file() or not (path / "comfy" / "cli_args.py").is_file():
        raise ComfyUnavailable(f"COMFYUI_PATH={raw} is not a ComfyUI source tree (no main.py / comfy/)")
    problems = []
    for python in _candidate_pythons(path, environ):
        missing = _missing_modules(python)
        if not missing:
            return ComfyInstall(path=path, python=python)
        problems.append(f"{python} lacks {', '.join(missing)}")
    raise ComfyUnavailable("no Python can run ComfyUI: " + "; ".join(problems)
                           + " (set COMFYUI_PYTHON or install ComfyUI's requirements.txt)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _format_validation_error(payload: dict) -> str:
    """One readable text from the JSON of a rejected `POST /prompt` (HTTP 400)."""
    error = payload.get("error") or {}
    lines = [f"{error.get('type', '?')}: {error.get('message', '')} {error.get('details', '')}".strip()]
    for node_id, node in (payload.get("node_errors") or {}).items():
        for item in node.get("errors", []):
            lines.append(f"  node {node_id} ({node.get('class_type')}): {item.get('type')}: "
                         f"{item.get('message')} {item.get('details', '')}".rstrip())
    return "\n".join(lines)


def _status_message(entry: dict, event: str) -> Optional[dict]:
    for name, data in (entry.get("status") or {}).get("messages", []):
        if name == event:
            return data
    return None


class ComfyServer:
    """One ComfyUI process on 127.0.0.1 with this pack linked as a custom node."""

    def __init__(self, install: ComfyInstall, base_dir: Path, pack_root: Optional[Path] = None,
                 pack_name: str = PACK_NAME, model_writer: Optional[ModelWriter] = None,
                 extra_args: Iterable[str] = (), startup_timeout: float = 240.0):
        self.install = install
        self.base_dir = Path(base_dir)
        self.pack_root = Path(pack_root) if pack_root else None
        self.pack_name = pack_name
        self.model_writer = model_writer
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: Optional[subprocess.Popen] = None
        self._log_file = None

    # ---- folders -------------------------------------------------------------------------
    @property
    def models_dir(self) -> Path:
        return self.base_dir / "models"

    @property
    def input_dir(self) -> Path:
        return self.base_dir / "input"

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "comfyui.log"

    def _make_layout(self) -> None:
        for name in MODEL_FOLDERS:
            (self.models_dir / name).mkdir(parents=True, exist_ok=True)
        for name in ("input", "output", "temp", "user", "custom_nodes"):
            (self.base_dir / name).mkdir(parents=True, exist_ok=True)
        if self.pack_root is not None:
            link = self.base_dir / "custom_nodes" / self.pack_name
            if not link.exists():
                link.symlink_to(self.pack_root.resolve(), target_is_directory=True)
        if self.model_writer is not None:
            self.model_writer(self.models_dir)

    def _folder_args(self) -> list[str]:
        """`--base-directory` where supported, else an extra-model-paths YAML plus dir flags."""
        if self.install.supports_flag("--base-directory"):
            return ["--base-directory", str(self.base_dir)]
        lines = ["wan21_integration:", f"  base_path: {self.base_dir}", "  custom_nodes: custom_nodes"]
        lines += [f"  {name}: models/{name}" for name in MODEL_FOLDERS]
        yaml_path = self.base_dir / "extra_model_paths.yaml"
        yaml_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        args = ["--extra-model-paths-config", str(yaml_path), "--output-directory", str(self.output_dir),
                "--input-directory", str(self.input_dir), "--temp-directory", str(self.base_dir)]
        if self.install.supports_flag("--user-directory"):
            args += ["--user-directory", str(self.base_dir / "user")]
        return args

    def command(self) -> list[str]:
        cmd = [self.install.python, "main.py", "--cpu", "--listen", "127.0.0.1",
               "--port", str(self.port), "--cache-none", "--log-stdout"]
        cmd += self._folder_args()
        if self.install.supports_flag("--database-url"):
            cmd += ["--database-url", "sqlite:///:memory:"]
        return cmd + self.extra_args

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> "ComfyServer":
        self._make_layout()
        env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        self._log_file = open(self.log_path, "wb")
        self.process = subprocess.Popen(self.command(), cwd=self.install.path, env=env,
                                        stdout=self._log_file, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                self.get_json("/system_stats", timeout=2)
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.3)
        raise TimeoutError(f"ComfyUI did not answer within {self.startup_timeout:.0f} s; log tail:\n"
                           + self.log_text()[-3000:])

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise ComfyError(f"ComfyUI exited with code {self.process.returncode}; log tail:\n"
                             + self.log_text()[-4000:])

    def stop(self) -> None:
        """Stop the server (SIGTERM to its process group, SIGKILL after 15 s)."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=wait_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> "ComfyServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- HTTP ----------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: Optional[bytes] = None,
                 headers: Optional[dict] = None, timeout: float = 60) -> tuple[int, bytes]:
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def get_json(self, path: str, timeout: float = 60) -> Any:
        status, data = self._request("GET", path, timeout=timeout)
        if status != 200:
            raise ComfyError(f"GET {path} answered {status}: {data[:500]!r}", status=status)
        return json.loads(data)

    def post_json(self, path: str, payload: Any, timeout: float = 60) -> tuple[int, Any]:
        status, data = self._request("POST", path, json.dumps(payload).encode(),
                                     {"Content-Type": "application/json"}, timeout)
        try:
            return status, json.loads(data) if data else None
        except json.JSONDecodeError:
            return status, data.decode("utf-8", "replace")

    def object_info(self, name: Optional[str] = None) -> dict:
        """All node definitions, or `{}`/the one definition for `name` (unknown names give `{}`)."""
        if name is None:
            return self.get_json("/object_info")
        return self.get_json("/object_info/" + urllib.parse.quote(name)).get(name, {})

    def system_stats(self) -> dict:
        return self.get_json("/system_stats")

    def post_prompt_raw(self, prompt: dict, client_id: Optional[str] = None) -> tuple[int, Any]:
        """`POST /prompt` as is: (HTTP status, JSON). 400 carries `error` and `node_errors`."""
        payload = {"prompt": prompt}
        if client_id:
            payload["client_id"] = client_id
        return self.post_json("/prompt", payload)

    def queue(self, prompt: dict, client_id: Optional[str] = None) -> str:
        """Queue an API-format prompt and return its prompt_id; raise ComfyError if invalid."""
        status, payload = self.post_prompt_raw(prompt, client_id)
        if status != 200:
            text = _format_validation_error(payload) if isinstance(payload, dict) else str(payload)
            raise ComfyError("prompt rejected:\n" + text, payload=payload, status=status)
        return payload["prompt_id"]

    def history(self, prompt_id: str) -> Optional[dict]:
        return self.get_json("/history/" + urllib.parse.quote(prompt_id)).get(prompt_id)

    def wait(self, prompt_id: str, timeout: float = 600) -> dict:
        """Poll `/history/<id>` until the prompt finished (successfully or not); its entry."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.history(prompt_id)
            if entry is not None:
                return entry
            self._check_alive()
            time.sleep(0.2)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout:.0f} s")

    def run(self, prompt: dict, timeout: float = 600, client_id: Optional[str] = None) -> dict:
        """Queue, wait and return `outputs` ({node_id: ui dict}); raise ComfyError on failure."""
        entry = self.wait(self.queue(prompt, client_id), timeout)
        status = entry.get("status") or {}
        if status.get("status_str") == "success":
            return entry.get("outputs", {})
        error = _status_message(entry, "execution_error")
        if error is not None:
            raise ComfyError(f"node {error['node_id']} ({error['node_type']}) failed: "
                             f"{error['exception_type']}: {error['exception_message']}\n"
                             + "".join(error.get("traceback", [])),
                             payload=entry, node_id=error["node_id"], node_type=error["node_type"],
                             exception_message=error["exception_message"])
        stopped = _status_message(entry, "execution_interrupted")
        if stopped is not None:
            raise ComfyError(f"interrupted at node {stopped['node_id']} ({stopped['node_type']})",
                             payload=entry, node_id=stopped["node_id"], node_type=stopped["node_type"])
        raise ComfyError(f"prompt failed without an error message: {status}", payload=entry)

    def interrupt(self, prompt_id: Optional[str] = None) -> None:
        self.post_json("/interrupt", {"prompt_id": prompt_id} if prompt_id else {})

    def free(self, unload_models: bool = True, free_memory: bool = True) -> None:
        self.post_json("/free", {"unload_models": unload_models, "free_memory": free_memory})

    def upload_image(self, path, subfolder: str = "", overwrite: bool = True) -> str:
        """Upload a file to the input folder; returns the value for LoadImage's `image` input."""
        path = Path(path)
        boundary = uuid.uuid4().hex
        fields = {"type": "input", "subfolder": subfolder, "overwrite": "true" if overwrite else "false"}
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                 for k, v in fields.items()]
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
                     f'filename="{path.name}"\r\nContent-Type: {mime}\r\n\r\n'.encode()
                     + path.read_bytes() + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        status, data = self._request("POST", "/upload/image", body,
                                     {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        if status != 200:
            raise ComfyError(f"upload of {path} answered {status}: {data[:300]!r}", status=status)
        info = json.loads(data)
        return f"{info['subfolder']}/{info['name']}" if info.get("subfolder") else info["name"]

    def output_files(self) -> list[Path]:
        """Every file under the output folder, sorted."""
        return sorted(p for p in self.output_dir.rglob("*") if p.is_file())

    def log_text(self) -> str:
        if self._log_file is not None:
            self._log_file.flush()
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def listen(self) -> "EventStream":
        """A WebSocket client; queue prompts with `client_id=stream.client_id` to get their events."""
        return EventStream("127.0.0.1", self.port)
