/** Fake of the frontend's /scripts/api.js: an EventTarget that remembers which types have listeners. */
class FakeApi extends EventTarget {
  constructor() {
    super();
    this.listened = new Set();
  }

  addEventListener(type, listener, options) {
    this.listened.add(type);
    super.addEventListener(type, listener, options);
  }

  /** Deliver a server message the way the frontend dispatches custom types. */
  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

export const api = new FakeApi();
