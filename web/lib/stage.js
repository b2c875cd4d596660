/**
 * Stage statistics sent by the pack's nodes after they run.
 *
 * Every node of the pack sends the custom event "wan21.stage" with
 * `{node, seconds, peak_ram_mb, peak_vram_mb}`; `node` is the execution id ("12", or "5:12" for a
 * node inside subgraph node 5) and a peak is null where it was not measured (VRAM on CPU).
 */

export const STAGE_EVENT = "wan21.stage";
export const CACHED_TEXT = "cached (not run)";

/** "0.42 s", "12.3 s", "2 min 05 s". */
export function formatSeconds(seconds) {
  if (seconds < 10) return `${seconds.toFixed(2)} s`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const whole = Math.round(seconds);
  return `${Math.floor(whole / 60)} min ${String(whole % 60).padStart(2, "0")} s`;
}

/** "850 MB", "5.6 GB" (1 GB = 1024 MB), or null for a peak that was not measured. */
export function formatMegabytes(megabytes) {
  if (megabytes === null || megabytes === undefined || !Number.isFinite(megabytes)) return null;
  if (megabytes < 1024) return `${Math.round(megabytes)} MB`;
  return `${(megabytes / 1024).toFixed(1)} GB`;
}

/** The status line of one stage, e.g. "3.21 s · RAM 1.2 GB · VRAM 5.6 GB"; null for a malformed event. */
export function stageText(detail) {
  if (!detail || typeof detail.seconds !== "number" || !Number.isFinite(detail.seconds)) return null;
  const parts = [formatSeconds(detail.seconds)];
  const ram = formatMegabytes(detail.peak_ram_mb);
  const vram = formatMegabytes(detail.peak_vram_mb);
  if (ram) parts.push(`RAM ${ram}`);
  if (vram) parts.push(`VRAM ${vram}`);
  return parts.join(" · ");
}

/** The parts of an execution id: "5:12" -> ["5", "12"]; null when it is not a non-empty string. */
export function parseExecutionId(executionId) {
  if (typeof executionId !== "string" && typeof executionId !== "number") return null;
  const parts = String(executionId).split(":").filter((part) => part.length > 0);
  return parts.length ? parts : null;
}

/**
 * The node an execution id names: the root graph's node, or for "5:12" node 12 inside the
 * subgraph of node 5. `graph` needs `getNodeById`; a subgraph node carries `.subgraph`.
 */
export function findNodeByExecutionId(graph, executionId) {
  const parts = parseExecutionId(executionId);
  if (!graph || !parts) return null;
  let current = graph;
  for (const id of parts.slice(0, -1)) {
    current = current.getNodeById(id)?.subgraph;
    if (!current) return null;
  }
  return current.getNodeById(parts[parts.length - 1]) ?? null;
}

/**
 * The stage lines shown on nodes during and after a run. `show` and `markCached` attach a line
 * to a node (in the field `field`, never in `properties`, so nothing is saved in the workflow);
 * `clear` removes every line at the start of the next run.
 */
export class StageBoard {
  constructor(field = "wan21Stage") {
    this.field = field;
    this.nodes = new Set();
  }

  /**
   * Attach the line of a "wan21.stage" event to its node; returns the node, or null. A node that
   * `isPackNode` rejects (the id now names another node, e.g. in another workflow tab) is skipped.
   */
  show(graph, detail, isPackNode = () => true) {
    const text = stageText(detail);
    const node = text && findNodeByExecutionId(graph, detail.node);
    if (!node || !isPackNode(node)) return null;
    this.#attach(node, text);
    return node;
  }

  /** Mark the pack's nodes among an `execution_cached` event's ids; returns those nodes. */
  markCached(graph, executionIds, isPackNode) {
    const marked = [];
    for (const id of executionIds ?? []) {
      const node = findNodeByExecutionId(graph, id);
      if (node && isPackNode(node)) {
        this.#attach(node, CACHED_TEXT);
        marked.push(node);
      }
    }
    return marked;
  }

  /** Remove every line; returns how many nodes had one. */
  clear() {
    const count = this.nodes.size;
    for (const node of this.nodes) delete node[this.field];
    this.nodes.clear();
    return count;
  }

  /** The line currently shown on `node`, or undefined. */
  textOf(node) {
    return node?.[this.field];
  }

  #attach(node, text) {
    node[this.field] = text;
    this.nodes.add(node);
  }
}
