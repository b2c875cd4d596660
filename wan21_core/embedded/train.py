"""All of Wan2.1-tiny's training, stage after stage, ending in the built-in files.

1. the VAE learns to reconstruct world clips (`vae_training`), then its latent is calibrated to the
   released latent statistics (`calibration`) and its decoder learns on with the encoder frozen
   (`decoder_refinement`);
2. the DiT's data: world clips encoded with that VAE and the seeded ViT, conditioned as the pipeline
   conditions (`dit_data`);
3. the i2v DiT and the umT5 encoder learn together with the flow-matching objective (`dit_training`);
4. the four networks are written as ComfyUI-style files with a JSON summary (`export`).

Every stage keeps its state in one directory and resumes from it; the same settings give the same files.
"""
from __future__ import annotations

import os
from dataclasses import asdict

import torch

from ..models import ImageEncoder
from ..profiling import cpu_model
from .builtin import DEMO_IMAGE, WEIGHTS_DIR
from .calibration import fold_latent_statistics, latent_statistics
from .decoder_refinement import DecoderRefinement, refine_decoder
from .dit_data import load_dataset
from .dit_training import DiTTraining, train_dit
from .encoders import EncoderSizes, domain_spiece_model, image_encoder_model
from .export import model_set_tensors, parameter_count, write_demo_image, write_model_set
from .vae_training import VAETraining, train_vae


def train_wan21_tiny(directory: str, vae_config: VAETraining, dit_config: DiTTraining,
                     decoder_config: DecoderRefinement | None = None, *, out: str = WEIGHTS_DIR,
                     device: str | torch.device = "cpu", command: str = "", log=print) -> dict[str, str]:
    """Run (or resume) every stage under `directory` and write the built-in files to `out`; returns their paths."""
    decoder_config = decoder_config or DecoderRefinement()
    vae = train_vae(directory, vae_config, device=device, log=log)
    mean, std = latent_statistics(vae, seed=vae_config.seed)
    fold_latent_statistics(vae, mean, std)
    vae = refine_decoder(directory, decoder_config, vae, vae_config, device=device, log=log)
    sizes = EncoderSizes()
    clip = image_encoder_model(sizes, dit_config.seed).to(device)
    data = load_dataset(directory, dit_config.data_plan, vae, ImageEncoder(clip), log=log)
    trainee = train_dit(directory, dit_config, data, device=device, log=log)
    tensors = model_set_tensors(trainee.ema, vae, trainee.text, clip, domain_spiece_model())
    summary = training_summary(vae_config, decoder_config, dit_config, sizes, tensors, data, (mean, std),
                               command, device)
    paths = write_model_set(out, tensors, summary)
    write_demo_image(os.path.join(out, os.path.basename(DEMO_IMAGE)))
    for kind, path in paths.items():
        log(f"wrote {kind}: {path} ({os.path.getsize(path) / 2**20:.1f} MiB)")
    return paths


def training_summary(vae_config: VAETraining, decoder_config: DecoderRefinement, dit_config: DiTTraining,
                     sizes: EncoderSizes, tensors: dict, data: dict, latent_stats: tuple, command: str,
                     device) -> dict:
    """What the files record of their training: command, settings, steps, wall times, final losses, sizes."""
    def stage(config) -> dict:
        settings = {k: v for k, v in asdict(config).items() if k not in ("losses", "seconds")}
        tail = [loss for _, loss in config.losses[-100:]]
        return {"settings": settings, "steps": len(config.losses), "seconds": round(config.seconds, 1),
                "final_loss": sum(tail) / max(1, len(tail)), "loss_curve": _curve(config.losses)}

    return {
        "model": "Wan2.1-tiny", "command": command,
        "machine": {"cpu": cpu_model(), "threads": torch.get_num_threads(),
                    "device": str(device), "torch": torch.__version__},
        "vae": {**stage(vae_config), "loss": "MSE reconstruction"},
        "latent_calibration": {"mean": [round(v, 5) for v in latent_stats[0].tolist()],
                               "std": [round(v, 5) for v in latent_stats[1].tolist()]},
        "vae_decoder_refinement": {**stage(decoder_config), "loss": "MSE reconstruction, encoder frozen"},
        "dit_data": {**asdict(dit_config.data_plan), "clips": len(data["prompt"]), "seconds": round(data["seconds"], 1)},
        "dit": {**stage(dit_config), "loss": "flow-matching velocity MSE (EMA weights exported)"},
        "encoders": {**asdict(sizes), "text_encoder": "trained with the DiT",
                     "image_encoder": "seeded initial weights (a fixed random-feature ViT)"},
        "parameters": {kind: parameter_count(state) for kind, state in tensors.items()},
    }


def _curve(losses: list, points: int = 40) -> list[tuple[int, float]]:
    """The loss log as about `points` (step, mean loss over the window ending there) pairs."""
    if not losses:
        return []
    window = max(1, len(losses) // points)
    return [(losses[end - 1][0], round(sum(v for _, v in losses[end - window:end]) / window, 5))
            for end in range(window, len(losses) + 1, window)]
