/** Fake of the frontend's /scripts/app.js: records registered extensions. */
export const app = {
  extensions: [],
  graph: null,
  canvas: { dirty: 0, setDirty() { this.dirty += 1; } },
  registerExtension(extension) {
    this.extensions.push(extension);
  },
};
