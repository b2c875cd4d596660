"""Training of the cascaded upscaler (photo data, losses, network growth, the phased trainer); imported only
by `scripts/train_upscaler.py` and the tests, never by inference."""
