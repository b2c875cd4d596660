"""The synthetic world of Wan2.1-tiny: prompts say what the rendered clips do, measured on the frames."""
import pytest
import torch

from wan21_core.embedded import COLOURS, prompt_of, render_clip, sample_scene
from wan21_core.embedded.world import Scene, Thing

FRAMES, SIZE = 25, 96


def _mask(frame: torch.Tensor, colour: str, tolerance: float = 12 / 255) -> torch.Tensor:
    """Pixels of exactly that sRGB colour (within a few levels), frame [H, W, 3]."""
    rgb = torch.tensor(COLOURS[colour]) / 255
    return (frame - rgb).abs().amax(-1) <= tolerance


def _centroid(mask: torch.Tensor) -> tuple[float, float]:
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return xs.float().mean().item() / mask.shape[1], ys.float().mean().item() / mask.shape[0]


def _scene(action: str, amount: float = 0.4, x: float = 0.5, y: float = 0.5, shape: str = "square",
           other_x: float = 0.2, **kw) -> Scene:
    things = (Thing(shape, "red", x, y, 0.25), Thing("circle", "blue", other_x, 0.2, 0.15))
    return Scene(background="flat", tones=((200, 200, 200), (200, 200, 200)), texture_seed=0, angle=0.0,
                 things=things, action=action, target=0 if action not in ("pan_left", "pan_right", "still") else None,
                 amount=amount, **kw)


def test_sampled_scenes_are_deterministic_and_follow_the_rules():
    for seed in range(200):
        scene = sample_scene(seed)
        assert scene == sample_scene(seed)
        assert 1 <= len(scene.things) <= 2
        assert all(0.12 <= t.size <= 0.35 and t.colour in COLOURS for t in scene.things)
        assert len({t.colour for t in scene.things}) == len(scene.things)   # colour masks tell them apart
        if scene.action in ("left", "right", "up", "down", "pan_left", "pan_right"):
            assert scene.amount >= 0.25   # a quarter of the frame at least
            for index, thing in enumerate(scene.things):   # the centre of what moves stays in the frame
                if index == scene.target or scene.target is None:
                    sign = -1 if scene.action in ("left", "up", "pan_right") else 1
                    along = thing.y if scene.action in ("up", "down") else thing.x
                    assert 0.1 - 1e-9 <= along + sign * scene.amount <= 0.9 + 1e-9
    assert torch.equal(render_clip(sample_scene(3)), render_clip(sample_scene(3)))


def test_prompts_name_the_object_and_the_action():
    assert prompt_of(_scene("left")) == "the red square moves to the left"
    assert prompt_of(_scene("up")) == "the red square moves up"
    assert prompt_of(_scene("grow")) == "the red square grows"
    assert prompt_of(_scene("shrink", 0.5)) == "the red square shrinks"
    assert prompt_of(_scene("turn", new_colour="yellow")) == "the red square turns yellow"
    assert prompt_of(_scene("pan_right")) == "the camera pans right"
    assert prompt_of(_scene("still")) == "nothing moves"


@pytest.mark.parametrize("action,dx,dy", [("left", -0.4, 0), ("right", 0.4, 0), ("up", 0, -0.4), ("down", 0, 0.4),
                                          ("pan_left", 0.4, 0), ("pan_right", -0.4, 0)])
def test_moves_and_pans_shift_the_object_by_the_amount(action, dx, dy):
    clip = render_clip(_scene(action, other_x=0.8 if action == "pan_right" else 0.2), FRAMES, SIZE)
    assert clip.shape == (FRAMES, SIZE, SIZE, 3) and clip.dtype == torch.float32
    (x0, y0), (x1, y1) = _centroid(_mask(clip[0], "red")), _centroid(_mask(clip[-1], "red"))
    assert (x1 - x0, y1 - y0) == pytest.approx((dx, dy), abs=0.02)
    other = [_centroid(_mask(frame, "blue")) for frame in (clip[0], clip[-1])]
    moved = abs(other[1][0] - other[0][0]) + abs(other[1][1] - other[0][1])
    assert moved == pytest.approx(0.4 if action.startswith("pan") else 0.0, abs=0.02)   # only pans move it


@pytest.mark.parametrize("shape", ["circle", "square", "triangle"])
def test_grow_and_shrink_scale_the_area(shape):
    grow = render_clip(_scene("grow", 1.8, shape=shape), FRAMES, SIZE)
    shrink = render_clip(_scene("shrink", 0.5, shape=shape), FRAMES, SIZE)
    area = lambda frame: _mask(frame, "red").sum().item()   # noqa: E731
    assert area(grow[-1]) / area(grow[0]) == pytest.approx(1.8 ** 2, rel=0.12)
    assert area(shrink[-1]) / area(shrink[0]) == pytest.approx(0.5 ** 2, rel=0.15)


def test_shapes_have_their_expected_areas():
    areas = {}
    for shape in ("circle", "square", "triangle"):
        areas[shape] = _mask(render_clip(_scene("still", shape=shape), 1, SIZE)[0], "red").sum().item()
    side = 0.25 * SIZE
    assert areas["square"] == pytest.approx(side ** 2, rel=0.1)
    assert areas["circle"] == pytest.approx(3.14159 * (side / 2) ** 2, rel=0.1)
    assert areas["triangle"] == pytest.approx(side ** 2 / 3 ** 0.5, rel=0.1)   # height h: area h² / √3


def test_turn_ends_in_the_new_colour_and_nothing_moves_is_still():
    clip = render_clip(_scene("turn", new_colour="yellow"), FRAMES, SIZE)
    assert _mask(clip[0], "red").sum() > 100 and _mask(clip[-1], "red").sum() == 0
    assert _mask(clip[-1], "yellow").sum() == _mask(clip[0], "red").sum()
    still = render_clip(_scene("still"), FRAMES, SIZE)
    assert torch.equal(still[0], still[-1])


@pytest.mark.parametrize("seed", range(12))
def test_every_background_kind_renders_in_range(seed):
    clip = render_clip(sample_scene(seed), 5, (64, 96))
    assert clip.shape == (5, 64, 96, 3) and 0 <= clip.min() and clip.max() <= 1


def test_two_object_scenes_never_overlap():
    for seed in range(300):
        scene = sample_scene(seed)
        if len(scene.things) == 2 and scene.action != "turn":
            clip = render_clip(scene)
            for index, thing in enumerate(scene.things):   # each object keeps its full area in every frame
                if index != scene.target and scene.target is not None:
                    areas = {_mask(frame, thing.colour).sum().item() for frame in clip}
                    assert max(areas) - min(areas) <= 0.02 * max(areas), seed
