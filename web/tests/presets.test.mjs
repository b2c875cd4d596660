import assert from "node:assert/strict";
import { test } from "node:test";

import { CUSTOM, RESOLUTION_PRESETS, presetLabelFor, presetLabels, presetSize } from "../lib/presets.js";

test("the four official sizes, all multiples of 16", () => {
  const sizes = RESOLUTION_PRESETS.map((preset) => `${preset.width}x${preset.height}`);
  assert.deepEqual(sizes, ["832x480", "480x832", "1280x720", "720x1280"]);
  for (const preset of RESOLUTION_PRESETS) {
    assert.equal(preset.width % 16, 0);
    assert.equal(preset.height % 16, 0);
    assert.ok(preset.label.includes(`${preset.width}×${preset.height}`), preset.label);
  }
  assert.ok(Object.isFrozen(RESOLUTION_PRESETS) && Object.isFrozen(RESOLUTION_PRESETS[0]));
});

test("labels start with custom and are unique", () => {
  const labels = presetLabels();
  assert.equal(labels[0], CUSTOM);
  assert.equal(new Set(labels).size, labels.length);
  assert.equal(labels.length, RESOLUTION_PRESETS.length + 1);
});

test("label <-> size round trip", () => {
  for (const label of presetLabels().slice(1)) {
    const size = presetSize(label);
    assert.equal(presetLabelFor(size.width, size.height), label);
  }
  assert.equal(presetSize("480p landscape (832×480)").width, 832);
  assert.equal(presetSize(CUSTOM), null);
  assert.equal(presetSize("no such preset"), null);
});

test("sizes that match no preset are custom, orientation matters", () => {
  assert.equal(presetLabelFor(832, 480), "480p landscape (832×480)");
  assert.equal(presetLabelFor(480, 832), "480p portrait (480×832)");
  assert.equal(presetLabelFor(848, 480), CUSTOM);
  assert.equal(presetLabelFor(undefined, undefined), CUSTOM);
});
