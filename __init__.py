"""ComfyUI entry point of the Wan2.1 image-to-video node pack.

ComfyUI imports this folder as a package. The pure-PyTorch core (`wan21_core`) is imported by
its absolute name so that the nodes, the tests and the command line share one copy of it.
"""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

WEB_DIRECTORY = "./web"

# pytest imports this file on its own, as a module without a package, when the checkout's folder name is
# not a Python identifier (the README's `comfyui-wan21-i2v`); there is nothing to register then.
if __package__:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

    __all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
