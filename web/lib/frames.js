/**
 * Frame counts of Wan2.1 clips.
 *
 * The Wan VAE keeps the first frame and packs every following group of 4 frames into one latent
 * frame, so a clip has 4n+1 frames (81 frames = 21 latent frames). Clips play at 16 fps.
 */

export const FPS = 16;
export const TEMPORAL_STRIDE = 4;

/** Whether `frames` is a positive count of the form 4n+1. */
export function isValidLength(frames) {
  return Number.isInteger(frames) && frames >= 1 && (frames - 1) % TEMPORAL_STRIDE === 0;
}

/** The 4n+1 count nearest to `frames`; a tie (4n+3) goes down, like `wan21_core.conditioning.check_frames`. */
export function nearestValidLength(frames) {
  const whole = Math.max(1, Math.round(frames));
  return Math.floor(whole / TEMPORAL_STRIDE) * TEMPORAL_STRIDE + 1;
}

/**
 * Snap a typed or dragged `length` to 4n+1 inside the widget's [min, max].
 * A value that is not a number falls back to the smallest allowed count.
 */
export function snapLength(value, min = 1, max = Infinity) {
  const low = nearestAtLeast(min);
  const high = Math.max(low, nearestAtMost(max));
  if (!Number.isFinite(Number(value))) return low;
  return Math.min(high, Math.max(low, nearestValidLength(Number(value))));
}

function nearestAtLeast(min) {
  if (!(min > 1)) return 1;
  return Math.ceil((min - 1) / TEMPORAL_STRIDE) * TEMPORAL_STRIDE + 1;
}

function nearestAtMost(max) {
  if (!Number.isFinite(max)) return Infinity;
  return Math.max(1, Math.floor((max - 1) / TEMPORAL_STRIDE) * TEMPORAL_STRIDE + 1);
}

/** Seconds of a clip of `frames` frames at `fps`, rounded to 2 decimals (81 -> 5.06). */
export function clipSeconds(frames, fps = FPS) {
  return Math.round((frames / fps) * 100) / 100;
}

/** The duration line of the fusion node, e.g. "81 frames = 5.06 s at 16 fps". */
export function durationText(frames, fps = FPS) {
  if (!isValidLength(frames)) {
    const below = Math.max(1, Math.floor((Math.round(frames) - 1) / TEMPORAL_STRIDE) * TEMPORAL_STRIDE + 1);
    return `${frames} frames is not 4n+1 (use ${below} or ${below + TEMPORAL_STRIDE})`;
  }
  return `${frames} frames = ${clipSeconds(frames, fps).toFixed(2)} s at ${fps} fps`;
}
