"""The umT5 text encoder of Wan2.1 (transformers' `UMT5EncoderModel`) and its sentencepiece tokenizer."""
from .model import TextEncoder, umt5_config, umt5_xxl_config
from .tokenizer import UMT5Tokenizer

__all__ = ["TextEncoder", "UMT5Tokenizer", "umt5_config", "umt5_xxl_config"]
