"""The DiT stage of Wan2.1-tiny's training: its data is the pipeline's conditioning, it is seeded and
resumable, and the flow-matching loss falls."""
import pytest
import torch

from wan21_core.embedded.dit_data import DataPlan, load_dataset, scene_group
from wan21_core.embedded.dit_training import DiTTraining, prompt_gap, train_dit, training_step_inputs
from wan21_core.embedded.encoders import EncoderSizes, image_encoder_model
from wan21_core.embedded.world import prompt_of
from wan21_core.models import ImageEncoder, VAEConfig, WanVAE

QUIET = dict(log=lambda line: None)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    torch.manual_seed(0)
    vae = WanVAE(VAEConfig(base_dim=4)).eval()
    clip = ImageEncoder(image_encoder_model(EncoderSizes(), seed=0))
    plan = DataPlan(scenes=2, variants=1)
    return vae, load_dataset(str(tmp_path_factory.mktemp("dit")), plan, vae, clip, **QUIET), plan


def _config(steps: int, **changes) -> DiTTraining:
    settings = dict(steps=steps, batch=2, dim=128, layers=1, ffn=256, warmup=1, decay_until=20, checkpoint_every=2,
                    scenes=2, variants=1)
    return DiTTraining(**{**settings, **changes})


def test_each_clip_shares_its_start_conditioning_with_its_variants(data):
    vae, dataset, plan = data
    groups = [scene_group(plan, index) for index in range(plan.scenes)]
    assert dataset["prompt"] == [prompt_of(scene) for group in groups for scene in group]
    assert dataset["x0"].shape == (sum(map(len, groups)), 16, 7, 12, 12)
    assert dataset["y"].shape == (plan.scenes, 20, 7, 12, 12) and dataset["clip_fea"].shape == (plan.scenes, 257, 160)
    first = dataset["group"].tolist().index(1)
    assert dataset["group"].tolist() == [0] * first + [1] * (len(dataset["prompt"]) - first)
    # the mask marks the first latent frame only; the conditioning latent starts like the clip's own latent
    assert torch.equal(dataset["y"][:, :4, 0], torch.ones(plan.scenes, 4, 12, 12))
    assert not dataset["y"][:, :4, 1:].any()
    assert torch.allclose(dataset["y"][:, 4:, 0], dataset["x0"][[0, first], :, 0], atol=1e-4)


def test_steps_draw_the_same_inputs_for_the_same_config(data):
    _, dataset, _ = data
    a, b = training_step_inputs(_config(5), dataset, 3), training_step_inputs(_config(5), dataset, 3)
    assert all(torch.equal(x, y) for x, y in zip(a[:3], b[:3])) and a[3] == b[3]
    sigma = training_step_inputs(_config(5, batch=256), dataset, 0)[1]
    assert 0 < sigma.min() and sigma.max() < 1 and sigma.median() > 0.5     # shift 3 favours high noise


def test_balanced_draws_give_every_action_the_same_share(data):
    _, dataset, _ = data
    actions = sorted(set(dataset["action"]))
    assert len(actions) > 1 and len(dataset["action"]) == len(dataset["prompt"])
    indices = training_step_inputs(_config(5, batch=4000), dataset, 0)[0].tolist()
    shares = [sum(dataset["action"][i] == action for i in indices) / len(indices) for action in actions]
    assert max(abs(share - 1 / len(actions)) for share in shares) < 0.03


def test_a_share_of_base_scenes_are_pans_without_variants():
    plan = DataPlan(scenes=200, variants=3)
    groups = [scene_group(plan, index) for index in range(plan.scenes)]
    pans = [group for group in groups if group[0].action.startswith("pan")]
    assert 0.15 < len(pans) / len(groups) < 0.35 and all(len(group) == 1 for group in pans)
    assert all(not scene.action.startswith("pan") for group in groups if group not in pans for scene in group)


def test_resuming_gives_the_same_weights_as_one_run(data, tmp_path):
    _, dataset, _ = data
    straight = train_dit(str(tmp_path / "a"), _config(4), dataset, **QUIET)
    train_dit(str(tmp_path / "b"), _config(2), dataset, **QUIET)
    resumed_config = _config(4)
    resumed = train_dit(str(tmp_path / "b"), resumed_config, dataset, **QUIET)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    assert [step for step, _ in resumed_config.losses] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="other settings .*lr"):
        train_dit(str(tmp_path / "b"), _config(5, lr=1e-2), dataset, **QUIET)


def test_the_loss_falls_and_the_ema_follows(data, tmp_path):
    _, dataset, _ = data
    config = _config(40, lr=2e-3, decay_until=40, ema=0.9, checkpoint_every=40)
    trainee = train_dit(str(tmp_path), config, dataset, **QUIET)
    losses = [loss for _, loss in config.losses]
    assert sum(losses[-10:]) / 10 < 0.8 * sum(losses[:10]) / 10
    moved = [(e - d).abs().max().item() for e, d in zip(trainee.ema.parameters(), trainee.dit.parameters())]
    assert 0 < max(moved)                       # an average, not a copy
    assert trainee.ema.head.head.weight.abs().max() > 0   # left its zero initialisation


def test_prompt_gap_compares_the_own_and_the_opposite_move(data, tmp_path):
    _, dataset, _ = data
    moving = {**dataset, "action": ["left"] + dataset["action"][1:],
              "prompt": ["the red circle moves to the left"] + dataset["prompt"][1:]}
    trainee = train_dit(str(tmp_path), _config(3, lr=2e-3), dataset, **QUIET)
    own, opposite = prompt_gap(trainee, moving, _config(3))
    assert own > 0 and opposite > 0 and own != opposite            # the text reaches the velocity
    for block in trainee.dit.blocks:                                # cut the text's values: no gap left
        torch.nn.init.zeros_(block.cross_attn.v.weight)
        torch.nn.init.zeros_(block.cross_attn.v.bias)
    own, opposite = prompt_gap(trainee, moving, _config(3))
    assert own == opposite
    assert prompt_gap(trainee, {**dataset, "action": ["grow"] * len(dataset["action"])}, _config(3)) is None
