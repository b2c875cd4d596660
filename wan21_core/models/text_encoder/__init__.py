"""The umT5 text encoder of Wan2.1 (transformers' `UMT5EncoderModel`) and its sentencepiece tokenizer."""
from .model import TextEncoder
from .tokenizer import UMT5Tokenizer

__all__ = ["TextEncoder", "UMT5Tokenizer"]
