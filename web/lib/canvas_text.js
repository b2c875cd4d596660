/**
 * Canvas drawing of the extension's text. Everything is drawn with `fillText`, never through
 * HTML, so no text from a workflow or the server can become markup.
 */

export const STAGE_LABEL = Object.freeze({
  font: "11px sans-serif",
  height: 16,
  paddingX: 6,
  gap: 4,
  background: "rgba(24, 48, 36, 0.92)",
  border: "rgba(120, 200, 150, 0.6)",
  color: "#cfeedd",
});

export const INFO_LINE = Object.freeze({
  font: "12px sans-serif",
  margin: 15,
  color: "#9aa",
  warnColor: "#e9a23b",
});

/**
 * A small box with `text` just above the node's title bar, left-aligned (ComfyUI draws its
 * node badges on the right of the same row). Coordinates are the node's: y = 0 is the top of the body.
 */
export function drawStageLabel(ctx, text, titleHeight) {
  const style = STAGE_LABEL;
  ctx.save();
  ctx.font = style.font;
  const width = ctx.measureText(text).width + 2 * style.paddingX;
  const top = -titleHeight - style.gap - style.height;
  ctx.beginPath();
  if (typeof ctx.roundRect === "function") ctx.roundRect(0, top, width, style.height, 4);
  else ctx.rect(0, top, width, style.height);
  ctx.fillStyle = style.background;
  ctx.fill();
  ctx.strokeStyle = style.border;
  ctx.lineWidth = 1;
  ctx.stroke();
  ctx.fillStyle = style.color;
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  ctx.fillText(text, style.paddingX, top + style.height / 2);
  ctx.restore();
}

/** One line of text in a widget row of height `height` starting at `y`, squeezed to the row's width. */
export function drawInfoLine(ctx, text, { y, width, height, warn = false }) {
  const style = INFO_LINE;
  ctx.save();
  ctx.font = style.font;
  ctx.fillStyle = warn ? style.warnColor : style.color;
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  ctx.fillText(text, style.margin, y + height / 2, Math.max(1, width - 2 * style.margin));
  ctx.restore();
}
