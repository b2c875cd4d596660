/**
 * Minimal stand-ins for the LiteGraph objects the extension touches. The serialisation helpers
 * copy the 1.27 frontend's rules: `LGraphNode.serialize` writes `widgets_values[i] = value` for
 * every widget index i whose `serialize !== false` (so a skipped widget in the middle leaves a
 * hole), and `graphToPrompt` skips widgets whose `options.serialize === false`.
 */

export class FakeGraph {
  constructor(nodes = []) {
    this.nodes = new Map();
    for (const node of nodes) this.add(node);
  }

  add(node) {
    this.nodes.set(String(node.id), node);
    return node;
  }

  getNodeById(id) {
    return this.nodes.get(String(id)) ?? null;
  }
}

export class FakeNode {
  constructor({ id = 1, type = "Node", widgets = [], inputs = [] } = {}) {
    this.id = id;
    this.type = type;
    this.size = [300, 100];
    this.inputs = inputs;
    this.widgets = widgets.map((widget) => ({ options: {}, ...widget }));
    this.dirty = 0;
  }

  addWidget(type, name, value, callback, options) {
    return this.addCustomWidget({ type, name, value, callback, options: options ?? {} });
  }

  addCustomWidget(widget) {
    this.widgets.push(widget);
    return widget;
  }

  computeSize() {
    const height = 30 + this.widgets.reduce((sum, widget) => sum + (widget.computeSize?.(this.size[0])[1] ?? 24), 0);
    return [200, height];
  }

  setSize(size) {
    this.size = [...size];
  }

  setDirtyCanvas() {
    this.dirty += 1;
  }

  /** Widget values as `LGraphNode.serialize` writes them (JSON turns holes into null). */
  serializedWidgetValues() {
    const values = [];
    this.widgets.forEach((widget, index) => {
      if (widget.serialize !== false) values[index] = widget.value;
    });
    return JSON.parse(JSON.stringify(values));
  }

  /** Inputs of the API prompt as `graphToPrompt` builds them from widgets. */
  promptInputs() {
    const inputs = {};
    for (const widget of this.widgets) {
      if (widget.name && widget.options?.serialize !== false) inputs[widget.name] = widget.value;
    }
    return inputs;
  }

  /** Type a value into a widget the way `BaseWidget.setValue` does: set, then call the callback. */
  setWidget(name, value) {
    const widget = this.widgets.find((item) => item.name === name);
    widget.value = value;
    widget.callback?.call(widget, widget.value);
  }
}

/** A canvas context that records what is drawn. */
export class FakeContext {
  constructor() {
    this.texts = [];
    this.calls = [];
    this.font = "";
  }

  measureText(text) {
    return { width: text.length * 6 };
  }

  fillText(text, x, y, maxWidth) {
    this.texts.push({ text, x, y, maxWidth, fillStyle: this.fillStyle });
  }
}
for (const name of ["save", "restore", "beginPath", "roundRect", "rect", "fill", "stroke"]) {
  FakeContext.prototype[name] = function record(...args) {
    this.calls.push([name, ...args]);
  };
}

/** The fusion node's backend widgets in their /object_info order, with the frontend's INT rounding. */
export function fusionWidgets() {
  const roundTo = (step, min) => function round(value) {
    this.value = Math.round((value - (min % step)) / step) * step + (min % step);
  };
  return [
    { name: "width", type: "number", value: 832, options: { min: 16, max: 4096, step2: 16 },
      callback: roundTo(16, 16) },
    { name: "height", type: "number", value: 480, options: { min: 16, max: 4096, step2: 16 },
      callback: roundTo(16, 16) },
    { name: "length", type: "number", value: 81, options: { min: 1, max: 1025, step2: 4 }, callback: roundTo(4, 1) },
    { name: "batch_size", type: "number", value: 1, options: { min: 1, max: 64, step2: 1 } },
    { name: "size_mode", type: "combo", value: "exact", options: { values: ["exact", "official area"] } },
    { name: "crop", type: "combo", value: "none", options: { values: ["none", "center"] } },
    { name: "vae_tile", type: "number", value: 0, options: { min: 0, max: 4096, step2: 32 } },
  ];
}
