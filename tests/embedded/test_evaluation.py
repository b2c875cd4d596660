"""The held-out cases and the measurements that judge Wan2.1-tiny's clips, checked on rendered truth:
the world's own clips pass, still clips and the opposite verb's clips fail."""
from collections import Counter

import pytest
import torch

from wan21_core.embedded.evaluation import HELD_OUT, OPPOSITE, VERBS, held_out_cases, measure
from wan21_core.embedded.world import render_clip, sample_scene


@pytest.fixture(scope="module")
def cases():
    return held_out_cases(per_verb=10)


def test_ten_cases_per_verb_from_held_out_seeds(cases):
    assert Counter(case.verb for case in cases) == {verb: 10 for verb in VERBS}
    assert all(case.scene.action == case.verb for case in cases)
    assert held_out_cases(per_verb=10) == cases
    training_range = {sample_scene(seed) for seed in range(200)}
    assert not {case.start for case in cases} & training_range
    assert HELD_OUT == 2**31


def test_opposite_verbs_share_their_start_images(cases):
    for first, second in OPPOSITE.items():
        starts = [case.start for case in cases if case.verb == first]
        assert starts == [case.start for case in cases if case.verb == second]
        for case in cases:
            if case.verb == second:
                assert torch.equal(case.start_image(), render_clip(case.start, frames=1))


def test_the_worlds_own_clips_pass(cases):
    failed = [(case.prompt, measure(case, render_clip(case.scene)).measured) for case in cases
              if not measure(case, render_clip(case.scene)).success]
    assert failed == []


def test_a_clip_that_stands_still_passes_only_nothing_moves(cases):
    for case in cases:
        still = render_clip(case.start, frames=1).expand(25, -1, -1, -1)
        assert measure(case, still).success == (case.verb == "still"), case.prompt


def test_the_opposite_clip_fails(cases):
    for first, second in OPPOSITE.items():
        for one, other in zip([c for c in cases if c.verb == first], [c for c in cases if c.verb == second]):
            assert not measure(one, render_clip(other.scene)).success, (one.prompt, other.prompt)
            assert not measure(other, render_clip(one.scene)).success, (other.prompt, one.prompt)
