"""The DiT stage's data: world clips as the DiT sees them, built once with the trained VAE and the
tiny image encoder, exactly as the pipeline conditions (`sampling.fuse_frames`).

Each base scene gives its own clip and up to `variants` others with the same first frame and
other actions (`world.variants`, picked one per action so moves are not outnumbered), so the
first-frame conditioning (latent of [start frame, grey frames...], mask and image features) is
encoded once per base scene and the DiT sees one start image under several prompts. A pan frames
the world differently from its first frame on and has no variants, so a share `pans` of the base
scenes are drawn among pans (one clip each) and the rest among the other actions.
Shards of `SHARD` base scenes are saved as they are built; a rebuild skips finished shards.
"""
from __future__ import annotations

import os
import random
import time
from dataclasses import asdict, dataclass

import torch

from ..sampling import encode_clip_features, fuse_frames, normalize_latent, plan_fusion
from .world import Scene, prompt_of, render_clip, sample_scene, variants

SHARD = 25


@dataclass(frozen=True)
class DataPlan:
    """Which clips the DiT trains on (all seeded)."""

    scenes: int = 640          # base scenes
    variants: int = 3          # extra clips per base scene with the same first frame
    pans: float = 0.25         # share of base scenes that are pans
    frames: int = 25
    size: int = 96
    seed: int = 0


def scene_group(plan: DataPlan, index: int) -> list[Scene]:
    """Base scene `index` followed by up to `plan.variants` of its variants, each of another action."""
    rng = random.Random(f"dit data {plan.seed} {index}")
    pan = rng.random() < plan.pans
    scene = sample_scene(rng.randrange(2**31))
    while scene.action.startswith("pan") != pan:
        scene = sample_scene(rng.randrange(2**31))
    by_action: dict[str, list[Scene]] = {}
    for other in variants(scene, rng.randrange(2**31)):
        by_action.setdefault(other.action, []).append(other)
    actions = rng.sample(sorted(by_action), min(plan.variants, len(by_action)))
    return [scene] + [rng.choice(by_action[action]) for action in actions]


def build_shard(plan: DataPlan, shard: int, vae, image_encoder) -> dict:
    """Tensors of base scenes [shard·SHARD, (shard+1)·SHARD): per clip the normalised latent
    `x0` [N, 16, T, h, w], `prompt`, `action` and `group` (its base scene's row); per base scene `y`
    [S, 20, T, h, w] (mask + normalised first-frame latent) and `clip_fea` [S, 257, width]."""
    x0, prompts, actions, groups, ys, features = [], [], [], [], [], []
    for row, index in enumerate(range(shard * SHARD, min(plan.scenes, (shard + 1) * SHARD))):
        scenes = scene_group(plan, index)
        clips = torch.stack([render_clip(s, plan.frames, plan.size) for s in scenes])      # [n, F, H, W, 3]
        fusion = plan_fusion(clips[0, :1], frames=plan.frames, width=plan.size, height=plan.size)
        latent, mask, clip_fea = fuse_frames(fusion, lambda video: vae.encode(video),
                                             lambda: encode_clip_features(image_encoder, fusion.images[:1]))
        ys.append(torch.cat([mask, normalize_latent(latent)], dim=1)[0])
        features.append(clip_fea[0].float())
        video = clips.permute(0, 4, 1, 2, 3).mul(2).sub(1)                                 # [n, 3, F, H, W]
        x0.append(normalize_latent(vae.encode(video)))
        prompts += [prompt_of(s) for s in scenes]
        actions += [s.action for s in scenes]
        groups += [row] * len(scenes)
    return {"plan": asdict(plan), "x0": torch.cat(x0), "prompt": prompts, "action": actions,
            "group": torch.tensor(groups), "y": torch.stack(ys), "clip_fea": torch.stack(features)}


def load_dataset(directory: str, plan: DataPlan, vae, image_encoder, log=print) -> dict:
    """All shards of `plan` (built where missing, under `directory`/dit_data/) joined into one dict
    (with `seconds`, the time the shards took to build)."""
    folder = os.path.join(directory, "dit_data")
    os.makedirs(folder, exist_ok=True)
    shards = []
    for shard in range((plan.scenes + SHARD - 1) // SHARD):
        path = os.path.join(folder, f"shard_{shard:04d}.pt")
        if not os.path.exists(path):
            began = time.perf_counter()
            built = build_shard(plan, shard, vae, image_encoder)
            built["seconds"] = time.perf_counter() - began
            torch.save(built, path + ".tmp")
            os.replace(path + ".tmp", path)
            log(f"dit data: shard {shard + 1} of {(plan.scenes + SHARD - 1) // SHARD} built")
        shards.append(torch.load(path, weights_only=True))
        if shards[-1]["plan"] != asdict(plan):
            raise ValueError(f"load_dataset: {path} was built for another plan ({shards[-1]['plan']}); "
                             f"remove {folder} or use the same plan")
    return _joined(shards)


def _joined(shards: list[dict]) -> dict:
    offsets, total = [], 0
    for shard in shards:
        offsets.append(total)
        total += shard["y"].shape[0]
    return {"x0": torch.cat([s["x0"] for s in shards]), "seconds": sum(s["seconds"] for s in shards),
            "prompt": [p for s in shards for p in s["prompt"]], "action": [a for s in shards for a in s["action"]],
            "group": torch.cat([s["group"] + offset for s, offset in zip(shards, offsets)]),
            "y": torch.cat([s["y"] for s in shards]), "clip_fea": torch.cat([s["clip_fea"] for s in shards])}
