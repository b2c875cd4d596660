"""Does a generated clip do what its prompt says? Held-out cases and measurements on the frames.

Cases start from scenes drawn with seeds of at least 2**31, a range no training stage draws from
(their seeds come from `randrange(2**31)`). The opposite verbs (left/right, up/down, grow/shrink, pan
left/right) share their start images, so one run of each measures both the verb and its opposite.
Measurements work on the frames alone, with the scene only saying where each object starts:

- moves and pans: the shift of an object's colour-mask centroid from the first to the last frame;
- grow / shrink: the ratio of the last to the first colour-mask area;
- turns: the colour of the last frame where the object was at the start;
- the object not named in a two-object scene: its shift (it may not move a tenth of the frame).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace

import torch

from .builtin import DEMO, DemoSettings
from .world import COLOURS, Scene, prompt_of, render_clip, sample_scene, variants

HELD_OUT = 2**31              # first seed of the held-out range
VERBS = ("left", "right", "up", "down", "grow", "shrink", "turn", "pan_left", "pan_right", "still")
OPPOSITE = {"left": "right", "up": "down", "grow": "shrink", "pan_left": "pan_right"}
MASK_TOLERANCE = 60.0         # sRGB distance (0..255) within which a pixel has an object's colour
MIN_SHIFT = 0.15              # a move or pan must cover this much of the frame (half the least asked)
STILL_SHIFT = 0.05            # "nothing moves": no object's centre moves more than this
OTHER_SHIFT = 0.1             # the object not named moves less than a tenth of the frame
AREA_RATIO = 1.5              # grow: area × at least this; shrink: area ÷ at least this


@dataclass(frozen=True)
class Case:
    """One generation to check: `scene` acts as its prompt says; the start image is `start`'s first frame
    (the same scene unless a pan borrows its opposite's start)."""

    verb: str
    scene: Scene
    start: Scene

    @property
    def prompt(self) -> str:
        return prompt_of(self.scene)

    def start_image(self, size: int = 96) -> torch.Tensor:
        """IMAGE [1, size, size, 3] in 0..1."""
        return render_clip(self.start, frames=1, size=size)


@dataclass
class Outcome:
    """What the frames show for a case: `success` and the measured numbers behind it."""

    case: Case
    success: bool
    measured: dict = field(default_factory=dict)
    first_frame_psnr: float | None = None


def generate(pipe, case: Case, seed: int, settings: DemoSettings = DEMO) -> torch.Tensor:
    """The case's clip [F, H, W, 3] from an `I2VPipeline` with the demo's settings."""
    return pipe(case.start_image(settings.size), case.prompt, frames=settings.frames, steps=settings.steps,
                guidance=settings.guidance, shift=settings.shift, solver=settings.solver, seed=seed,
                width=settings.size, height=settings.size)


def evaluate(pipe, cases: list[Case], settings: DemoSettings = DEMO) -> list[Outcome]:
    """Generate and judge every case (case i of a verb with noise seed i), with the first frame's PSNR
    against the start image."""
    outcomes, seen = [], {}
    for case in cases:
        seed = seen[case.verb] = seen.get(case.verb, -1) + 1
        frames = generate(pipe, case, seed, settings)
        outcome = measure(case, frames)
        outcome.first_frame_psnr = psnr(frames[0], case.start_image(settings.size)[0])
        outcomes.append(outcome)
    return outcomes


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two images in 0..1 (of 8-bit quantised values, as a saved frame would hold)."""
    mse = ((a * 255).round() - (b * 255).round()).div(255).square().mean().item()
    return float("inf") if mse == 0 else 10 * math.log10(1 / mse)


def held_out_cases(per_verb: int = 10, seed: int = 0) -> list[Case]:
    """`per_verb` cases of every verb in VERBS; opposite verbs come in pairs on the same start image."""
    cases: list[Case] = []
    for first, second in OPPOSITE.items():
        for scene, other in _pairs(first, second, per_verb, seed):
            cases += [Case(first, scene, scene), Case(second, other, scene)]
    for verb in ("turn", "still"):
        cases += [Case(verb, scene, scene) for scene in _scenes(verb, per_verb, seed)]
    return sorted(cases, key=lambda case: VERBS.index(case.verb))


def _held_out_scenes(tag: str, seed: int):
    rng = random.Random(f"held out {tag} {seed}")
    while True:
        yield sample_scene(HELD_OUT + rng.randrange(2**31))


def _scenes(verb: str, count: int, seed: int) -> list[Scene]:
    found = []
    for scene in _held_out_scenes(verb, seed):
        if scene.action == verb:
            found.append(scene)
        if len(found) == count:
            return found


def _pairs(first: str, second: str, count: int, seed: int) -> list[tuple[Scene, Scene]]:
    """Scenes doing `first` with a twin doing `second` from the same start (same object and amount)."""
    found = []
    for scene in _held_out_scenes(first, seed):
        if scene.action != first:
            continue
        twin = _twin(scene, second)
        if twin is not None:
            found.append((scene, twin))
        if len(found) == count:
            return found


def _twin(scene: Scene, action: str) -> Scene | None:
    if scene.action.startswith("pan"):   # every object must stay inside the frame both ways
        inside = all(0.1 <= thing.x - scene.amount and thing.x + scene.amount <= 0.9 for thing in scene.things)
        return replace(scene, action=action) if inside else None
    matches = [v for v in variants(scene, 0) if v.action == action and v.target == scene.target]
    return matches[0] if matches else None


# ------------------------------------------------------------------------------------- measuring

def measure(case: Case, frames: torch.Tensor) -> Outcome:
    """Judge frames [F, H, W, 3] in 0..1 against the case's verb."""
    scene, first, last = case.scene, frames[0], frames[-1]
    turned = scene.things[scene.target] if case.verb == "turn" else None   # may take the other's colour
    shifts = [_shift(first, last, thing, None if thing is turned else turned) for thing in scene.things]
    measured = {"shifts": [tuple(round(v, 3) for v in s) for s in shifts]}
    verb = case.verb
    if verb == "still":
        areas = [_area_ratio(first, last, thing) for thing in scene.things]
        measured["area_ratios"] = [round(a, 3) for a in areas]
        ok = all(math.hypot(*s) < STILL_SHIFT for s in shifts) and all(0.8 <= a <= 1.25 for a in areas)
        return Outcome(case, ok, measured)
    if verb.startswith("pan"):
        sign = 1 if verb == "pan_left" else -1                 # the camera goes left: the world goes right
        ok = all(sign * dx >= MIN_SHIFT and abs(dy) < sign * dx for dx, dy in shifts)
        return Outcome(case, ok, measured)
    target = scene.things[scene.target]
    if verb in ("left", "right", "up", "down"):
        dx, dy = shifts[scene.target]
        along, across = {"left": (-dx, dy), "right": (dx, dy), "up": (-dy, dx), "down": (dy, dx)}[verb]
        ok = along >= MIN_SHIFT and abs(across) < along
    elif verb in ("grow", "shrink"):
        ratio = _area_ratio(first, last, target)
        measured["area_ratio"] = round(ratio, 3)
        ok = ratio >= AREA_RATIO if verb == "grow" else ratio <= 1 / AREA_RATIO
    else:
        old, new = _turned(last, target, COLOURS[target.colour], COLOURS[scene.new_colour])
        measured["colour_distance_old_new"] = (round(old, 1), round(new, 1))
        ok = new < old
    others = [math.hypot(*s) for i, s in enumerate(shifts) if i != scene.target]
    if others:
        measured["other_shift"] = round(max(others), 3)
    return Outcome(case, ok and all(shift < OTHER_SHIFT for shift in others), measured)


def signed_motion(outcome: Outcome) -> float:
    """The measured motion along the axis of the case's verb pair, signed: x shift (left/right and pans,
    the mean over objects for pans), y shift (up/down) or the log of the area ratio (grow/shrink)."""
    case, shifts = outcome.case, outcome.measured["shifts"]
    if case.verb in ("grow", "shrink"):
        return math.log(max(outcome.measured["area_ratio"], 1e-3))
    if case.verb.startswith("pan"):
        return sum(dx for dx, _ in shifts) / len(shifts)
    dx, dy = shifts[case.scene.target]
    return dy if case.verb in ("up", "down") else dx


def colour_mask(frame: torch.Tensor, colour: tuple) -> torch.Tensor:
    """Pixels of frame [H, W, 3] (0..1) within MASK_TOLERANCE of an sRGB colour (0..255): bool [H, W]."""
    rgb = torch.tensor(colour, dtype=frame.dtype) / 255
    return (frame - rgb).norm(dim=-1) * 255 <= MASK_TOLERANCE


def _window(frame: torch.Tensor, thing, margin: float) -> torch.Tensor:
    """bool [H, W]: within a square of half-side size/2 + margin (frame fractions) around the start centre."""
    height, width = frame.shape[:2]
    ys = (torch.arange(height) + 0.5) / height
    xs = (torch.arange(width) + 0.5) / width
    reach = thing.size / 2 + margin
    return ((ys - thing.y).abs() <= reach)[:, None] & ((xs - thing.x).abs() <= reach)[None, :]


def _centroid(mask: torch.Tensor) -> tuple[float, float] | None:
    if mask.sum() < 4:
        return None
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return (xs.float().mean().item() + 0.5) / mask.shape[1], (ys.float().mean().item() + 0.5) / mask.shape[0]


def _shift(first: torch.Tensor, last: torch.Tensor, thing, exclude=None) -> tuple[float, float]:
    """(dx, dy) of the object's colour centroid, frame fractions; the start is looked for near where the
    object starts, the end anywhere but around the start of `exclude` (an object that turned and may now
    have this colour). An object not found at the end counts as gone: a shift of (1, 1)."""
    start = _centroid(colour_mask(first, COLOURS[thing.colour]) & _window(first, thing, 0.05))
    end_mask = colour_mask(last, COLOURS[thing.colour])
    if exclude is not None:
        end_mask &= ~_window(last, exclude, 0.05)
    end = _centroid(end_mask)
    if start is None or end is None:
        return 1.0, 1.0
    return end[0] - start[0], end[1] - start[1]


def _area_ratio(first: torch.Tensor, last: torch.Tensor, thing) -> float:
    colour = COLOURS[thing.colour]
    start = (colour_mask(first, colour) & _window(first, thing, 0.05)).sum().item()
    return colour_mask(last, colour).sum().item() / max(start, 1)


def _turned(last: torch.Tensor, thing, old: tuple, new: tuple) -> tuple[float, float]:
    """sRGB distances of the last frame's median colour, where the object started, to the old and new colour."""
    height, width = last.shape[:2]
    ys = (torch.arange(height) + 0.5) / height
    xs = (torch.arange(width) + 0.5) / width
    core = (ys[:, None] - thing.y).square() + (xs[None, :] - thing.x).square() <= (thing.size / 4) ** 2
    colour = last[core].median(dim=0).values * 255
    return (colour - torch.tensor(old)).norm().item(), (colour - torch.tensor(new)).norm().item()
