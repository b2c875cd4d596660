"""A tiny SentencePiece unigram model trained in-process, with the umT5 id layout (pad 0, eos 1, unk 2),
and the exact hub-free transformers tokenizer built from it (transformers
`src/transformers/models/t5/tokenization_t5.py`, `T5Tokenizer(vocab=..., _spm_precompiled_charsmap=...)`)."""
from __future__ import annotations

import collections
import functools
import io
import itertools
import json
import os
import pathlib
import random
import re

import sentencepiece

# Text that NFKC changes, so a missing normaliser would show (full-width, circled digits, ligatures).
UNICODE_LINES = [
    "Ｆｕｌｌ－ｗｉｄｔｈ ｔｅｘｔ １２３ and ① ② ③ circled digits",
    "ligatures: ﬁne ﬂow ﬀ, fractions ½ ¼, superscripts x² y³",
    "accents: café naïve résumé Ångström São Paulo Zürich",
    "一只猫在草地上奔跑，阳光明媚。 日本語のテキスト、カタカナ ｶﾀｶﾅ",
    "emoji and symbols: ★ ☆ → ← ™ © °C µm",
]


def _corpus_lines() -> list[str]:
    """About 45 KB of varied text: stdlib docstrings, random word lines and a few unicode lines."""
    sources = [str, dict, list, set, bytes, int, float, collections, functools, itertools, json, os, pathlib,
               re, random]
    lines = []
    for obj in sources:
        for name in dir(obj):
            doc = getattr(getattr(obj, name, None), "__doc__", None)
            if isinstance(doc, str):
                lines += [ln.strip() for ln in doc.splitlines() if len(ln.strip()) > 20]
    rng = random.Random(0)
    words = sorted({w for ln in lines for w in re.findall(r"[A-Za-z]{3,}", ln)})
    lines += [" ".join(rng.choice(words) for _ in range(12)) for _ in range(200)]
    lines += UNICODE_LINES * 5
    unique = list(dict.fromkeys(lines))
    total, kept = 0, []
    for line in unique:
        if total > 45_000:
            break
        kept.append(line)
        total += len(line.encode()) + 1
    return kept


def train_spm(vocab_size: int = 500) -> bytes:
    """Serialized SentencePiece unigram model (umT5 id layout, NFKC normalisation)."""
    writer = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(_corpus_lines()), model_writer=writer, vocab_size=vocab_size,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, normalization_rule_name="nmt_nfkc",
        hard_vocab_limit=False, minloglevel=2)
    return writer.getvalue()


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _fields(buf: bytes):
    """(field number, wire type, payload) of each field of a protobuf message."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            payload, pos = _read_varint(buf, pos)
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            payload, pos = buf[pos:pos + length], pos + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            payload, pos = buf[pos:pos + size], pos + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, payload


def precompiled_charsmap(proto: bytes) -> bytes:
    """ModelProto field 3 (NormalizerSpec) -> field 2 (precompiled_charsmap)."""
    for number, _, payload in _fields(proto):
        if number == 3:
            for inner, _, value in _fields(payload):
                if inner == 2:
                    return bytes(value)
    return b""


def hf_t5_tokenizer(proto: bytes):
    """transformers' T5 tokenizer equal to the SentencePiece model: its pieces and scores plus the proto's
    NFKC charsmap (`T5Tokenizer`'s `_spm_precompiled_charsmap`, `src/transformers/models/t5/tokenization_t5.py`)."""
    from transformers import T5Tokenizer

    sp = sentencepiece.SentencePieceProcessor(model_proto=proto)
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    return T5Tokenizer(vocab=vocab, _spm_precompiled_charsmap=precompiled_charsmap(proto), extra_ids=0)


def write_tokenizer_json(folder: str, hf_tokenizer) -> str:
    """Save a transformers tokenizer's `tokenizer.json` into folder; returns its path."""
    path = os.path.join(folder, "tokenizer.json")
    hf_tokenizer.backend_tokenizer.save(path)
    return path
