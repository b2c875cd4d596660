/**
 * Resolution presets of the fusion node: the official Wan2.1 480p and 720p sizes in both
 * orientations. The preset list is a frontend-only widget; it only writes width and height.
 */

export const CUSTOM = "custom";

export const RESOLUTION_PRESETS = Object.freeze([
  Object.freeze({ label: "480p landscape (832×480)", width: 832, height: 480 }),
  Object.freeze({ label: "480p portrait (480×832)", width: 480, height: 832 }),
  Object.freeze({ label: "720p landscape (1280×720)", width: 1280, height: 720 }),
  Object.freeze({ label: "720p portrait (720×1280)", width: 720, height: 1280 }),
]);

/** Entries of the preset list: "custom" first, then every preset. */
export function presetLabels() {
  return [CUSTOM, ...RESOLUTION_PRESETS.map((preset) => preset.label)];
}

/** The preset whose size is exactly width x height, else "custom". */
export function presetLabelFor(width, height) {
  const match = RESOLUTION_PRESETS.find((preset) => preset.width === width && preset.height === height);
  return match ? match.label : CUSTOM;
}

/** `{width, height}` of a preset label, or null for "custom" and unknown labels. */
export function presetSize(label) {
  const match = RESOLUTION_PRESETS.find((preset) => preset.label === label);
  return match ? { width: match.width, height: match.height } : null;
}
