/**
 * What the extension adds to the pack's nodes, written against the small part of the LiteGraph
 * node interface it uses (`widgets`, `inputs`, `addWidget`, `addCustomWidget`, `computeSize`,
 * `setSize`, `setDirtyCanvas`), so it runs on plain objects in the tests.
 *
 * Widgets added here are frontend-only: they set `serialize: false` (left out of a saved
 * workflow's `widgets_values`) and `options.serialize: false` (left out of the prompt sent to the
 * server), and they are appended after the node's own widgets, so the saved order of the backend
 * widgets never changes.
 */
import { drawInfoLine, drawStageLabel } from "./canvas_text.js";
import { durationText, isValidLength, snapLength } from "./frames.js";
import { presetLabelFor, presetLabels, presetSize } from "./presets.js";

export const FUSION_NODE = "WanFusionConditioning";
export const PRESET_WIDGET = "resolution preset";
export const DURATION_WIDGET = "duration";
const INFO_ROW_HEIGHT = 20;

export function widgetOf(node, name) {
  return node.widgets?.find((widget) => widget.name === name);
}

/** Whether the widget `name` is fed by a link (its input socket is connected). */
export function isWidgetLinked(node, name) {
  return Boolean(node.inputs?.some((input) => input.widget?.name === name && input.link != null));
}

/** Run `after(value)` after a widget's own callback (the frontend's rounding runs first). */
export function chainCallback(widget, after) {
  const original = widget.callback;
  widget.callback = function chained(value, ...rest) {
    const result = original?.call(this, value, ...rest);
    after(value);
    return result;
  };
}

/** Run `after` (with the same `this` and arguments) after a prototype method. */
export function chainMethod(prototype, name, after) {
  const original = prototype[name];
  prototype[name] = function chained(...args) {
    const result = original?.apply(this, args);
    after.apply(this, args);
    return result;
  };
}

/** The fusion node's duration line and whether it is a warning. */
export function durationLine(node) {
  if (isWidgetLinked(node, "length")) return { text: "length comes from a linked input", warn: false };
  const frames = widgetOf(node, "length")?.value;
  return { text: durationText(frames), warn: !isValidLength(frames) };
}

/** Set width and height from a preset label; returns false for "custom" or an unknown label. */
export function applyPreset(node, label) {
  const size = presetSize(label);
  const width = widgetOf(node, "width");
  const height = widgetOf(node, "height");
  if (!size || !width || !height) return false;
  width.value = size.width;
  height.value = size.height;
  node.setDirtyCanvas?.(true, true);
  return true;
}

/** Show the preset that matches the current width x height (or "custom"). */
export function syncPreset(node) {
  const preset = widgetOf(node, PRESET_WIDGET);
  const width = widgetOf(node, "width");
  const height = widgetOf(node, "height");
  if (preset && width && height) preset.value = presetLabelFor(width.value, height.value);
}

/** Grow the node if its saved size is too small for the widgets added here. */
export function fitNode(node) {
  if (typeof node.computeSize !== "function" || typeof node.setSize !== "function") return;
  const [minWidth, minHeight] = node.computeSize();
  const [width, height] = node.size;
  if (width < minWidth || height < minHeight) node.setSize([Math.max(width, minWidth), Math.max(height, minHeight)]);
}

/**
 * Add the fusion node's frontend widgets: 4n+1 snapping of `length`, the resolution preset list
 * and the duration line. Returns false (and adds nothing) if a backend widget is missing.
 */
export function installFusionUi(node) {
  const length = widgetOf(node, "length");
  const width = widgetOf(node, "width");
  const height = widgetOf(node, "height");
  if (!length || !width || !height) return false;

  chainCallback(length, (value) => {
    length.value = snapLength(value, length.options?.min, length.options?.max);
  });
  chainCallback(width, () => syncPreset(node));
  chainCallback(height, () => syncPreset(node));

  const preset = node.addWidget("combo", PRESET_WIDGET, presetLabelFor(width.value, height.value),
    (label) => applyPreset(node, label), { values: presetLabels(), serialize: false });
  markFrontendOnly(preset);

  const duration = node.addCustomWidget({
    type: "wan21_info",
    name: DURATION_WIDGET,
    value: "",
    options: {},
    draw(ctx, owner, rowWidth, y, rowHeight) {
      const line = durationLine(owner);
      drawInfoLine(ctx, line.text, { y, width: rowWidth, height: rowHeight, warn: line.warn });
    },
    computeSize(rowWidth) {
      return [rowWidth, INFO_ROW_HEIGHT];
    },
  });
  markFrontendOnly(duration);
  return true;
}

function markFrontendOnly(widget) {
  widget.serialize = false;
  widget.options ??= {};
  widget.options.serialize = false;
}

/** Draw a node's stage line (from `board`) above its title bar after the node's own foreground. */
export function installStageLabel(prototype, board, titleHeight) {
  chainMethod(prototype, "onDrawForeground", function drawStage(ctx) {
    const text = board.textOf(this);
    if (text) drawStageLabel(ctx, text, titleHeight());
  });
}
