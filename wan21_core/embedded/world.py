"""The world Wan2.1-tiny learns: flat-coloured circles, squares and triangles on simple backgrounds,
doing what a plain-English prompt says, rendered deterministically from a seed (no downloaded data).

A `Scene` is drawn by `sample_scene(seed)`; `prompt_of(scene)` is its prompt and
`render_clip(scene)` its clip, float [F, H, W, 3] in 0..1 (ComfyUI's IMAGE layout) at 16 fps.
With two objects the named one acts and the other stays where it is; a pan moves everything.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

COLOURS = {   # sRGB, 0..255
    "red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 80, 220),
    "yellow": (240, 210, 40), "white": (245, 245, 245), "black": (20, 20, 20),
}
SHAPES = ("circle", "square", "triangle")
ACTIONS = ("left", "right", "up", "down", "grow", "shrink", "turn", "pan_left", "pan_right", "still")
OBJECT_ACTIONS = ACTIONS[:7]
BACKGROUNDS = ("flat", "gradient", "noise")
MOVE_RANGE = (0.3, 0.5)      # fraction of the frame a move or pan covers over the clip
GROW_RANGE = (1.6, 2.0)      # final / initial size
SHRINK_RANGE = (0.45, 0.6)
SIZE_RANGE = (0.12, 0.35)    # object size (its bounding height) as a fraction of the frame height
_MIN_CONTRAST = 120.0        # sRGB distance between an object colour and the background's mean


@dataclass(frozen=True)
class Thing:
    """One object: shape, colour name, centre (x, y) and size as fractions of the frame."""

    shape: str
    colour: str
    x: float
    y: float
    size: float


@dataclass(frozen=True)
class Scene:
    """What a clip shows. `target` is the acting object (None for pans and "nothing moves");
    `amount` is the move distance (fraction of the frame) or the final/initial size ratio;
    `new_colour` is the colour a "turns" action ends in."""

    background: str
    tones: tuple              # two sRGB colours (flat uses the first)
    texture_seed: int
    angle: float              # gradient direction in radians
    things: tuple
    action: str
    target: int | None
    amount: float
    new_colour: str | None = None


# ------------------------------------------------------------------------------------- sampling

def sample_scene(seed: int) -> Scene:
    """A random scene, the same for the same seed. Objects start where their motion keeps the centre
    inside the frame (edges may leave it partly)."""
    rng = random.Random(seed)
    light = rng.random() < 0.5
    tones = tuple(_tone(rng, light) for _ in range(2))
    mean = [sum(c[i] for c in tones) / 2 for i in range(3)]
    action = rng.choice(ACTIONS)
    count = rng.choice((1, 2))
    target = None if action.startswith("pan") or action == "still" else rng.randrange(count)
    amount, new_colour = 0.0, None
    if action in ("left", "right", "up", "down") or action.startswith("pan"):
        amount = rng.uniform(*MOVE_RANGE)
    elif action in ("grow", "shrink"):
        amount = rng.uniform(*(GROW_RANGE if action == "grow" else SHRINK_RANGE))
    things = _place(rng, mean, count, action, amount, target)
    target = None if target is None else min(target, len(things) - 1)
    if action == "turn":
        new_colour = rng.choice([c for c in _contrasting(mean) if c != things[target].colour])
    return Scene(background=rng.choice(BACKGROUNDS), tones=tones, texture_seed=rng.randrange(2**31),
                 angle=rng.uniform(0, 2 * math.pi), things=things, action=action, target=target,
                 amount=amount, new_colour=new_colour)


def variants(scene: Scene, seed: int) -> list[Scene]:
    """Other scenes that start with the same first frame: every object action for every object whose
    path stays in the frame and clear of the other object, and "nothing moves". Pans frame the
    background differently from the first frame on, so a pan has no variants (and is none)."""
    if scene.action.startswith("pan"):
        return []
    rng = random.Random(seed)
    mean = [sum(c[i] for c in scene.tones) / 2 for i in range(3)]
    found = []
    for action in OBJECT_ACTIONS + ("still",):
        for target in (range(len(scene.things)) if action != "still" else (None,)):
            if (action, target) == (scene.action, scene.target):
                continue
            candidate = _variant(scene, rng, mean, action, target)
            if candidate is not None:
                found.append(candidate)
    return found


def _variant(scene: Scene, rng: random.Random, mean: list, action: str, target: int | None) -> Scene | None:
    amount, new_colour = 0.0, None
    if action in ("left", "right", "up", "down"):
        amount = rng.uniform(*MOVE_RANGE)
        thing, (dx, dy) = scene.things[target], _travel(action, amount, True)
        if not (0.1 <= thing.x + dx <= 0.9 and 0.1 <= thing.y + dy <= 0.9):
            return None
    elif action in ("grow", "shrink"):
        amount = rng.uniform(*(GROW_RANGE if action == "grow" else SHRINK_RANGE))
    elif action == "turn":
        choices = [c for c in _contrasting(mean) if c != scene.things[target].colour]
        if not choices:
            return None
        new_colour = rng.choice(choices)
    if len(scene.things) == 2 and target is not None and not _apart(list(scene.things), action, amount, target):
        return None
    return replace(scene, action=action, target=target, amount=amount, new_colour=new_colour)


def _travel(action: str, amount: float, moves: bool) -> tuple[float, float]:
    """(dx, dy) of an object's centre over the clip, in frame fractions."""
    if not moves:
        return 0.0, 0.0
    return {"left": (-amount, 0.0), "right": (amount, 0.0), "up": (0.0, -amount), "down": (0.0, amount),
            "pan_left": (amount, 0.0), "pan_right": (-amount, 0.0)}.get(action, (0.0, 0.0))


def _tone(rng: random.Random, light: bool) -> tuple:
    """A background colour: light (150..230) or dark (25..95) with a small tint."""
    base = rng.uniform(150, 230) if light else rng.uniform(25, 95)
    return tuple(min(255.0, max(0.0, base + rng.uniform(-25, 25))) for _ in range(3))


def _contrasting(mean: list) -> list[str]:
    return [name for name, rgb in COLOURS.items() if math.dist(rgb, mean) >= _MIN_CONTRAST]


def _place(rng: random.Random, mean: list, count: int, action: str, amount: float, target: int | None) -> tuple:
    """`count` objects of different colours whose paths never overlap (one object when 50 tries fail)."""
    for _ in range(50):
        things = [_thing(rng, mean, _travel(action, amount, i == target or action.startswith("pan")))
                  for i in range(count)]
        if count == 1 or (things[0].colour != things[1].colour and _apart(things, action, amount, target)):
            return tuple(things)
    return tuple(things[:1])


def _apart(things: list, action: str, amount: float, target: int | None) -> bool:
    """The two objects keep a gap of a tenth of the frame at every moment of the clip."""
    def at(i: int, t: float) -> tuple[float, float, float]:
        dx, dy = _travel(action, amount, i == target)
        grow = amount ** t if i == target and action in ("grow", "shrink") else 1.0
        return things[i].x + t * dx, things[i].y + t * dy, things[i].size * grow / 2
    for step in range(11):
        (x0, y0, r0), (x1, y1, r1) = at(0, step / 10), at(1, step / 10)
        if math.hypot(x1 - x0, y1 - y0) < r0 + r1 + 0.1:
            return False
    return True


def _thing(rng: random.Random, background_mean: list, travel: tuple[float, float]) -> Thing:
    """An object whose centre stays within 0.1..0.9 of the frame over a motion of `travel`."""
    x, y = (rng.uniform(0.1 + max(0.0, -d), 0.9 - max(0.0, d)) for d in travel)
    return Thing(shape=rng.choice(SHAPES), colour=rng.choice(_contrasting(background_mean)), x=x, y=y,
                 size=rng.uniform(*SIZE_RANGE))


def prompt_of(scene: Scene) -> str:
    """The plain-English prompt of a scene."""
    if scene.action == "still":
        return "nothing moves"
    if scene.action.startswith("pan"):
        return f"the camera pans {scene.action[4:]}"
    thing = scene.things[scene.target]
    name = f"the {thing.colour} {thing.shape}"
    if scene.action in ("left", "right"):
        return f"{name} moves to the {scene.action}"
    if scene.action in ("up", "down"):
        return f"{name} moves {scene.action}"
    if scene.action == "turn":
        return f"{name} turns {scene.new_colour}"
    return f"{name} {scene.action}s"


def demo_scene() -> Scene:
    """The bundled demo's scene (not drawn by `sample_scene`): a red circle that moves to the right
    under a blue square, on a light gradient."""
    things = (Thing("circle", "red", 0.3, 0.58, 0.28), Thing("square", "blue", 0.78, 0.2, 0.2))
    return Scene(background="gradient", tones=((205, 215, 228), (160, 178, 205)), texture_seed=0, angle=0.6,
                 things=things, action="right", target=0, amount=0.4)


# ------------------------------------------------------------------------------------- rendering

def render_clip(scene: Scene, frames: int = 25, size: int | tuple[int, int] = 96) -> torch.Tensor:
    """The clip of `scene`: float32 [frames, H, W, 3] in 0..1 (`size` is H = W or (H, W))."""
    height, width = (size, size) if isinstance(size, int) else size
    pan = {"pan_left": -scene.amount, "pan_right": scene.amount}.get(scene.action, 0.0)
    extra = math.ceil(abs(pan) * width)
    canvas = _background(scene, height, width + extra)                       # [3, H, W + extra]
    clip = []
    for f in range(frames):
        t = f / max(frames - 1, 1)
        # A camera panning right shows what lies to the right: the world shifts left in the frame.
        shift = round(t * abs(pan) * width)
        offset = shift if pan > 0 else extra - shift
        frame = canvas[:, :, offset:offset + width].clone()
        for index, thing in enumerate(scene.things):
            _paint(frame, _thing_at(scene, index, thing, t, pan))
        clip.append(frame)
    return torch.stack(clip).permute(0, 2, 3, 1).div(255.0).clamp(0, 1).contiguous()   # [F,3,H,W] -> [F,H,W,3]


def _thing_at(scene: Scene, index: int, thing: Thing, t: float, pan: float) -> tuple:
    """(shape, rgb, x, y, size) of an object at clip time t in 0..1, in frame fractions."""
    x, y, size, rgb = thing.x - t * pan, thing.y, thing.size, COLOURS[thing.colour]
    if index == scene.target:
        step = t * scene.amount
        x += {"left": -step, "right": step}.get(scene.action, 0.0)
        y += {"up": -step, "down": step}.get(scene.action, 0.0)
        if scene.action in ("grow", "shrink"):
            size *= scene.amount ** t   # a constant rate of growth
        if scene.action == "turn":
            end = COLOURS[scene.new_colour]
            rgb = tuple(a + (b - a) * t for a, b in zip(rgb, end))
    return thing.shape, rgb, x, y, size


def _background(scene: Scene, height: int, width: int) -> torch.Tensor:
    """[3, H, W] sRGB 0..255."""
    first, second = (torch.tensor(c, dtype=torch.float32).view(3, 1, 1) for c in scene.tones)
    if scene.background == "flat":
        return first.expand(3, height, width).clone()
    if scene.background == "gradient":
        ys, xs = torch.meshgrid(torch.linspace(-0.5, 0.5, height), torch.linspace(-0.5, 0.5, width) * width / height,
                                indexing="ij")
        ramp = (xs * math.cos(scene.angle) + ys * math.sin(scene.angle)).clamp(-0.5, 0.5) + 0.5   # [H, W]
        return first + (second - first) * ramp
    generator = torch.Generator().manual_seed(scene.texture_seed)
    coarse = torch.rand(1, 1, 5, max(5, round(5 * width / height)), generator=generator)
    smooth = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)[0].clamp(0, 1)
    return first + (second - first) * smooth


def _paint(frame: torch.Tensor, spec: tuple) -> None:
    """Composite one anti-aliased flat-coloured shape onto frame [3, H, W] in place."""
    shape, rgb, x, y, size = spec
    _, height, width = frame.shape
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    dx, dy, r = xs - x * width, ys - y * height, size * height / 2   # pixels; r = half the bounding height
    if shape == "circle":
        inside = r - torch.sqrt(dx * dx + dy * dy)
    elif shape == "square":
        inside = r - torch.maximum(dx.abs(), dy.abs())
    else:   # upright equilateral, height 2r: apex (0, -r), base y = r, base corners (±2r/√3, r)
        inside = torch.minimum(r - dy, (dy + r - math.sqrt(3) * dx.abs()) / 2)   # distances to base, slanted sides
    alpha = (inside + 0.5).clamp(0, 1)   # a one-pixel ramp at the edge
    colour = torch.tensor(rgb, dtype=frame.dtype).view(3, 1, 1)
    frame.mul_(1 - alpha).add_(alpha * colour)
