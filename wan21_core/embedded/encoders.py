"""The text and image encoders of Wan2.1-tiny: the released architectures (umT5 encoder, CLIP ViT)
at small widths, with a SentencePiece model trained on the world's own words.

The umT5 encoder is trained with the DiT (its gradients come through the cross-attention); the ViT
stays at its seeded initial weights, a fixed random-feature image encoder: the start frame reaches
the DiT exactly through the first-frame latent, and the image cross-attention reads these features.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import torch

from ..sampling.defaults import NEGATIVE_PROMPTS
from .world import COLOURS, SHAPES


@dataclass(frozen=True)
class EncoderSizes:
    """Widths of the tiny encoders (the DiT reads text_width and image_width as text_dim / img_dim)."""

    text_width: int = 128
    text_layers: int = 2
    text_heads: int = 4
    text_ffn: int = 256
    vocab: int = 256               # most pieces the SentencePiece model may have
    image_width: int = 160         # 2 heads of 80, the ViT-H/14 head size the loaders assume
    image_layers: int = 2
    image_mlp: int = 320


def domain_prompts() -> list[str]:
    """Every prompt of the world's templates (world.prompt_of), in a fixed order."""
    prompts = ["nothing moves", "the camera pans left", "the camera pans right"]
    for colour in COLOURS:
        for shape in SHAPES:
            name = f"the {colour} {shape}"
            prompts += [f"{name} moves to the left", f"{name} moves to the right", f"{name} moves up",
                        f"{name} moves down", f"{name} grows", f"{name} shrinks"]
            prompts += [f"{name} turns {other}" for other in COLOURS if other != colour]
    return prompts


def domain_spiece_model(vocab: int = EncoderSizes.vocab) -> bytes:
    """A serialized SentencePiece unigram model with umT5's special ids (pad 0, eos 1, unk 2), trained
    on the world's prompts and the official negative prompts (so the default negative prompt of the
    pipeline tokenizes into known pieces). Single-threaded, so the bytes are reproducible."""
    import sentencepiece

    corpus = domain_prompts() + sorted(set(NEGATIVE_PROMPTS.values()))
    buffer = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus * 4), model_writer=buffer, vocab_size=vocab, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, normalization_rule_name="nmt_nfkc", character_coverage=1.0,
        hard_vocab_limit=False, num_threads=1, minloglevel=2)
    return buffer.getvalue()


def text_encoder_model(sizes: EncoderSizes, vocab_size: int, seed: int):
    """A transformers `UMT5EncoderModel` of `sizes` with seeded initial weights (train mode)."""
    from transformers import UMT5EncoderModel

    from ..models.text_encoder import umt5_config

    config = umt5_config(vocab_size=vocab_size, d_model=sizes.text_width, d_kv=sizes.text_width // sizes.text_heads,
                         d_ff=sizes.text_ffn, num_layers=sizes.text_layers, num_heads=sizes.text_heads)
    torch.manual_seed(seed)
    return UMT5EncoderModel(config)


def image_encoder_model(sizes: EncoderSizes, seed: int):
    """A transformers `CLIPVisionModel` (224 px, patch 14: 257 tokens) with seeded initial weights."""
    from transformers import CLIPVisionModel

    from ..models.image_encoder import clip_vision_config

    config = clip_vision_config(hidden_size=sizes.image_width, intermediate_size=sizes.image_mlp,
                                num_layers=sizes.image_layers, image_size=224, patch_size=14)
    torch.manual_seed(seed)
    return CLIPVisionModel(config).eval()
