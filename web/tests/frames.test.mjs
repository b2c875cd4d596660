import assert from "node:assert/strict";
import { test } from "node:test";

import { FPS, clipSeconds, durationText, isValidLength, nearestValidLength, snapLength } from "../lib/frames.js";

test("4n+1 counts are valid, others are not", () => {
  for (const frames of [1, 5, 9, 81, 1025]) assert.equal(isValidLength(frames), true, frames);
  for (const frames of [0, -3, 2, 4, 80, 82, 81.5, NaN, "81"]) {
    assert.equal(isValidLength(frames), false, String(frames));
  }
});

test("nearest 4n+1 agrees with wan21_core.check_frames(snap=True): frames // 4 * 4 + 1", () => {
  const expected = { 1: 1, 2: 1, 3: 1, 4: 5, 5: 5, 6: 5, 7: 5, 8: 9, 79: 77, 80: 81, 82: 81, 83: 81, 84: 85 };
  for (const [frames, snapped] of Object.entries(expected)) {
    assert.equal(nearestValidLength(Number(frames)), snapped, `frames=${frames}`);
  }
});

test("snapLength keeps the result inside the widget's min/max", () => {
  assert.equal(snapLength(80, 1, 1025), 81);
  assert.equal(snapLength(1024, 1, 1025), 1025);
  assert.equal(snapLength(5000, 1, 1025), 1025);
  assert.equal(snapLength(1030, 1, 1027), 1025);     // 1029 would exceed max
  assert.equal(snapLength(-7, 1, 1025), 1);
  assert.equal(snapLength(0, 1, 1025), 1);
  assert.equal(snapLength(3, 6, 100), 9);            // smallest 4n+1 >= min
  assert.equal(snapLength(97.6, 1, 1025), 97);       // typed decimals round first
  assert.equal(snapLength(101), 101);                // no limits given
});

test("snapLength turns non-numbers into the smallest allowed count", () => {
  assert.equal(snapLength(NaN, 1, 1025), 1);
  assert.equal(snapLength("abc", 5, 1025), 5);
  assert.equal(snapLength(undefined, 1, 1025), 1);
});

test("every snapped value is 4n+1 for a sweep of inputs", () => {
  for (let value = -10; value <= 1100; value += 1) {
    const snapped = snapLength(value, 1, 1025);
    assert.ok(isValidLength(snapped) && snapped <= 1025, `value=${value} -> ${snapped}`);
  }
});

test("duration at 16 fps", () => {
  assert.equal(FPS, 16);
  assert.equal(clipSeconds(81), 5.06);
  assert.equal(durationText(81), "81 frames = 5.06 s at 16 fps");
  assert.equal(durationText(1), "1 frames = 0.06 s at 16 fps");
  assert.equal(durationText(33), "33 frames = 2.06 s at 16 fps");
  assert.equal(durationText(49, 24), "49 frames = 2.04 s at 24 fps");
  assert.equal(durationText(161), "161 frames = 10.06 s at 16 fps");
});

test("a count that is not 4n+1 gets a warning naming both neighbours", () => {
  assert.equal(durationText(80), "80 frames is not 4n+1 (use 77 or 81)");
  assert.equal(durationText(0), "0 frames is not 4n+1 (use 1 or 5)");
});
