"""The Wan Frame Align node: its declaration, and that it calls `align_frames` with its widgets."""
from __future__ import annotations

import pytest
import torch

from alignment_clips import carphone, jitter
from wan21_core.alignment import align_frames


@pytest.fixture(scope="module")
def node(plugin):
    return plugin.NODE_CLASS_MAPPINGS["WanFrameAlign"]()


def test_node_is_registered_with_its_display_name(plugin):
    assert plugin.NODE_DISPLAY_NAME_MAPPINGS["WanFrameAlign"] == "Wan Frame Align"
    required = plugin.NODE_CLASS_MAPPINGS["WanFrameAlign"].INPUT_TYPES()["required"]
    assert list(required) == ["images", "reference", "method", "window", "strength", "deflicker"]


def test_node_defaults_are_the_core_defaults(plugin):
    required = plugin.NODE_CLASS_MAPPINGS["WanFrameAlign"].INPUT_TYPES()["required"]
    frames = jitter(carphone(10), seed=1)
    values = {name: spec[1]["default"] for name, spec in required.items() if name != "images"}
    (out,) = plugin.NODE_CLASS_MAPPINGS["WanFrameAlign"]().run(images=frames, **values)
    assert torch.equal(out, align_frames(frames))


def test_node_passes_every_option(node):
    frames, reference = jitter(carphone(6), seed=2), carphone(1)
    (out,) = node.run(images=frames, reference="image", method="mkl", window=3, strength=0.5, deflicker=2,
                      reference_image=reference)
    assert torch.equal(out, align_frames(frames, reference=reference, method="mkl", window=3, strength=0.5,
                                         deflicker=2))


def test_image_reference_needs_the_image_input(node):
    with pytest.raises(ValueError, match="reference = image needs the reference_image input"):
        node.run(images=carphone(2), reference="image", method="lab", window=8, strength=1.0, deflicker=0)
