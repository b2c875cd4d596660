/**
 * Module hooks that serve the extension the way ComfyUI does: the web folder under
 * /extensions/comfyui-wan21-i2v/ and the frontend's /scripts/app.js and /scripts/api.js, here
 * replaced by the fakes next to this file. Registered with `module.register` by extension.test.mjs.
 */
import { readFile } from "node:fs/promises";

export const SERVER_ROOT = "file:///comfy-server/";
export const EXTENSION_ROOT = `${SERVER_ROOT}extensions/comfyui-wan21-i2v/`;
const WEB_FOLDER = new URL("../../", import.meta.url);
const FAKES = {
  [`${SERVER_ROOT}scripts/app.js`]: new URL("./app.mjs", import.meta.url),
  [`${SERVER_ROOT}scripts/api.js`]: new URL("./api.mjs", import.meta.url),
};

export async function resolve(specifier, context, nextResolve) {
  const parent = context.parentURL ?? "";
  if (specifier.startsWith(SERVER_ROOT) || (parent.startsWith(SERVER_ROOT) && specifier.startsWith("."))) {
    return { url: new URL(specifier, parent).href, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}

export async function load(url, context, nextLoad) {
  if (!url.startsWith(SERVER_ROOT)) return nextLoad(url, context);
  const served = url.startsWith(EXTENSION_ROOT) ? new URL(url.slice(EXTENSION_ROOT.length), WEB_FOLDER) : null;
  const file = FAKES[url] ?? served;
  if (!file) throw new Error(`not served by the fake ComfyUI: ${url}`);
  return { format: "module", source: await readFile(file, "utf8"), shortCircuit: true };
}
