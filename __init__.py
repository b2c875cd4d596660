"""ComfyUI entry point of the Wan2.1 image-to-video node pack.

ComfyUI imports this folder as a package. The pure-PyTorch core (`wan21_core`) is imported by
its absolute name so that the nodes, the tests and the command line share one copy of it.
"""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
