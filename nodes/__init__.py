"""ComfyUI node adapters. Each node declares its inputs and calls one `wan21_core` function."""

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
