"""The umT5 tokenizer of Wan2.1, built from local files only (official `wan/modules/t5.py`, `T5EncoderModel`).

Official behaviour (`wan/modules/tokenizers.py`, `HuggingfaceTokenizer(clean='whitespace')` calling
`AutoTokenizer(google/umt5-xxl)` with `padding='max_length', truncation=True, max_length=512`):

1. clean the prompt: `ftfy.fix_text` -> `html.unescape` twice -> strip -> collapse whitespace -> strip;
2. tokenize without special tokens, keep at most `max_length - 1` tokens, append EOS (id 1);
3. pad with the pad id (0) to `max_length`; the attention mask is 1 on real tokens, EOS included.

Two backends give the token ids, both from files the user already has and never from the hub:
- a serialized SentencePiece model: the `spiece_model` uint8 tensor that ComfyUI embeds in its
  umT5 safetensors files, or a `spiece.model` file (library `sentencepiece`);
- a Hugging Face `tokenizer.json` (library `tokenizers`).

Known divergence: the SentencePiece backend reads the literal text "</s>" or "<pad>" inside a
prompt as characters, whereas a `tokenizer.json` (and the official Hugging Face tokenizer) turns it
into the special token. Real prompts do not contain these strings.
"""
from __future__ import annotations

import html
import os
import re
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence, Union

import ftfy
import numpy as np
import sentencepiece
import torch
from tokenizers import Tokenizer

from ..configs import TEXT_LEN

SPIECE_FILE = "spiece.model"
TOKENIZER_JSON_FILE = "tokenizer.json"

TokenizerSource = Union[bytes, bytearray, memoryview, np.ndarray, torch.Tensor, str, os.PathLike]


def clean_prompt(text: str) -> str:
    """The official `clean='whitespace'` prompt cleaning."""
    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


@dataclass
class TokenizedPrompts:
    """A tokenized batch, padded to a fixed length.

    ids: int64 [B, max_length]; attention_mask: int64 [B, max_length], 1 on real tokens;
    lengths: the real token count of each prompt (EOS included), equal to `attention_mask.sum(1)`.
    """

    ids: torch.Tensor
    attention_mask: torch.Tensor
    lengths: list[int]


class UMT5Tokenizer:
    """umT5 tokenizer with the official cleaning, EOS, padding and truncation.

    Build it with `from_spiece_bytes`, `from_file`, `from_dir` or `load` (which dispatches on the
    kind of source). `tokenizer(prompts)` returns `TokenizedPrompts` of length 512.
    """

    def __init__(self, encode_fn: Callable[[str], list[int]], eos_id: int, pad_id: int, vocab_size: int,
                 source: str):
        self._encode_fn = encode_fn
        self.eos_id = eos_id
        self.pad_id = pad_id
        self.vocab_size = vocab_size
        self.source = source

    def __repr__(self) -> str:
        return (f"UMT5Tokenizer(source={self.source}, vocab_size={self.vocab_size}, "
                f"eos_id={self.eos_id}, pad_id={self.pad_id})")

    # ----------------------------------------------------------------------------- construction

    @classmethod
    def from_spiece_bytes(cls, data: bytes | bytearray | memoryview | np.ndarray | torch.Tensor,
                          source: str = "serialized SentencePiece model") -> "UMT5Tokenizer":
        """From a serialized SentencePiece model: bytes, or a uint8 tensor/array (ComfyUI's `spiece_model`)."""
        proto = _as_bytes(data)
        processor = sentencepiece.SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(proto)
        except (RuntimeError, OSError) as err:
            raise ValueError(f"{source}: not a valid SentencePiece model ({len(proto)} bytes): {err}") from None
        return cls._from_processor(processor, source)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "UMT5Tokenizer":
        """From a SentencePiece model file (`spiece.model`, `*.model`) or a `tokenizer.json`."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"umT5 tokenizer file: {path!r} does not exist")
        if path.endswith(".json"):
            return cls._from_tokenizer_json(path)
        with open(path, "rb") as handle:
            return cls.from_spiece_bytes(handle.read(), source=path)

    @classmethod
    def from_dir(cls, folder: str | os.PathLike) -> "UMT5Tokenizer":
        """From a folder holding `spiece.model` (preferred) or `tokenizer.json`."""
        folder = os.fspath(folder)
        for name in (SPIECE_FILE, TOKENIZER_JSON_FILE):
            candidate = os.path.join(folder, name)
            if os.path.isfile(candidate):
                return cls.from_file(candidate)
        raise FileNotFoundError(
            f"umT5 tokenizer folder {folder!r}: expected {SPIECE_FILE} or {TOKENIZER_JSON_FILE}, found neither")

    @classmethod
    def load(cls, source: TokenizerSource) -> "UMT5Tokenizer":
        """From serialized bytes / a uint8 tensor, a tokenizer file, or a folder holding one."""
        if isinstance(source, (bytes, bytearray, memoryview, np.ndarray, torch.Tensor)):
            return cls.from_spiece_bytes(source)
        if isinstance(source, (str, os.PathLike)):
            return cls.from_dir(source) if os.path.isdir(source) else cls.from_file(source)
        raise TypeError(f"umT5 tokenizer source: expected bytes, a uint8 tensor or a path, "
                        f"found {type(source).__name__}")

    @classmethod
    def _from_processor(cls, processor, source: str) -> "UMT5Tokenizer":
        eos_id, pad_id = processor.eos_id(), processor.pad_id()
        if eos_id < 0 or pad_id < 0:
            raise ValueError(f"{source}: the SentencePiece model defines no EOS or pad token "
                             f"(eos_id={eos_id}, pad_id={pad_id}); a umT5 model needs both")
        return cls(lambda text: processor.encode(text, out_type=int), eos_id, pad_id,
                   processor.get_piece_size(), source)

    @classmethod
    def _from_tokenizer_json(cls, path: str) -> "UMT5Tokenizer":
        backend = Tokenizer.from_file(path)
        backend.no_truncation()
        backend.no_padding()
        eos_id, pad_id = backend.token_to_id("</s>"), backend.token_to_id("<pad>")
        if eos_id is None or pad_id is None:
            raise ValueError(f"{path}: the tokenizer has no '</s>' or '<pad>' token; a umT5 tokenizer needs both")
        return cls(lambda text: backend.encode(text, add_special_tokens=False).ids, eos_id, pad_id,
                   backend.get_vocab_size(with_added_tokens=True), path)

    # ----------------------------------------------------------------------------- tokenizing

    def encode(self, prompt: str, max_length: int = TEXT_LEN) -> list[int]:
        """Token ids of one prompt: cleaned, truncated to `max_length - 1` tokens, then EOS."""
        if not isinstance(prompt, str):
            raise TypeError(f"prompt: expected str, found {type(prompt).__name__}")
        ids = self._encode_fn(clean_prompt(prompt))
        if len(ids) > max_length - 1:
            dropped = len(ids) - (max_length - 1)
            warnings.warn(f"umT5 prompt has {len(ids) + 1} tokens including EOS, more than the {max_length} "
                          f"the text encoder takes; the last {dropped} tokens were dropped", stacklevel=3)
            ids = ids[:max_length - 1]
        return ids + [self.eos_id]

    def __call__(self, prompts: str | Sequence[str], max_length: int = TEXT_LEN) -> TokenizedPrompts:
        """Tokenize a prompt or a list of prompts, padded to `max_length` (512, as officially)."""
        if max_length < 1:
            raise ValueError(f"max_length: expected >= 1, found {max_length}")
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts:
            raise ValueError("prompts: expected at least one prompt, found an empty list")
        rows = [self.encode(p, max_length) for p in prompts]
        ids = torch.full((len(rows), max_length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), max_length), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, :len(row)] = 1
        return TokenizedPrompts(ids, mask, [len(row) for row in rows])


def _as_bytes(data: bytes | bytearray | memoryview | np.ndarray | torch.Tensor) -> bytes:
    """The raw bytes of a serialized model given as bytes or as a uint8 tensor/array."""
    if isinstance(data, torch.Tensor):
        if data.dtype != torch.uint8:
            raise TypeError(f"spiece_model tensor: expected dtype uint8, found {data.dtype}")
        data = data.detach().cpu().contiguous().numpy()
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise TypeError(f"spiece_model array: expected dtype uint8, found {data.dtype}")
        return data.tobytes()
    return bytes(data)
