"""Wan2.1-tiny, the built-in model, does what the prompt says, from start images it never saw.

Every clip is generated through the real pipeline from the built-in files, with the demo's settings,
and judged on its frames (`wan21_core.embedded.evaluation`): for every verb the named object acts in
at least 90 % of ten held-out cases, the other object of a two-object scene stays put, the opposite
prompt on the same start image gives the opposite motion, and the first frame is the start image.
"""
from collections import defaultdict

import pytest
import torch

from builtin_weights import needs_builtin
from wan21_core import load_pipeline
from wan21_core.embedded import DEMO, builtin_paths, training_summary
from wan21_core.embedded.evaluation import OPPOSITE, VERBS, evaluate, generate, held_out_cases, signed_motion

REQUIRED_SUCCESS = 0.9
FIRST_FRAME_PSNR = 25.0
pytestmark = needs_builtin


@pytest.fixture(scope="module")
def pipe():
    paths = builtin_paths()
    return load_pipeline(paths["dit"], paths["vae"], paths["t5"], paths["clip_vision"], "cpu")


@pytest.fixture(scope="module")
def outcomes(pipe):
    return evaluate(pipe, held_out_cases(per_verb=10))


def _by_verb(outcomes) -> dict:
    table = defaultdict(list)
    for outcome in outcomes:
        table[outcome.case.verb].append(outcome)
    return table


@pytest.mark.parametrize("verb", VERBS)
def test_the_named_object_does_what_the_prompt_says(outcomes, verb):
    runs = _by_verb(outcomes)[verb]
    assert len(runs) == 10
    failed = [(o.case.prompt, o.measured) for o in runs if not o.success]
    assert len(failed) <= (1 - REQUIRED_SUCCESS) * len(runs), failed


@pytest.mark.parametrize("first", list(OPPOSITE))
def test_the_opposite_prompt_gives_the_opposite_motion(outcomes, first):
    table = _by_verb(outcomes)
    pairs = list(zip(table[first], table[OPPOSITE[first]]))
    assert all(a.case.start == b.case.start for a, b in pairs)
    opposite = [signed_motion(a) * signed_motion(b) < 0 for a, b in pairs]
    assert sum(opposite) >= REQUIRED_SUCCESS * len(pairs), [(signed_motion(a), signed_motion(b)) for a, b in pairs]


def test_the_first_frame_is_the_start_image(outcomes):
    worst = min(outcomes, key=lambda o: o.first_frame_psnr)
    assert worst.first_frame_psnr >= FIRST_FRAME_PSNR, (worst.case.prompt, worst.first_frame_psnr)


def test_same_seed_same_video(pipe):
    case = held_out_cases(per_verb=1)[0]
    assert torch.equal(generate(pipe, case, seed=3), generate(pipe, case, seed=3))
    assert not torch.equal(generate(pipe, case, seed=3), generate(pipe, case, seed=4))


def test_the_files_are_small_and_record_their_training():
    import os

    paths = builtin_paths()
    assert sum(os.path.getsize(p) for p in paths.values()) <= 25 * 2**20
    summary = training_summary()
    assert summary["model"] == "Wan2.1-tiny" and summary["command"].startswith("python -m wan21_core.embedded train")
    assert summary["dit"]["steps"] == summary["dit"]["settings"]["steps"]
    assert summary["dit_data"]["frames"] == DEMO.frames and summary["dit_data"]["size"] == DEMO.size
