/**
 * Which node definitions belong to this pack.
 *
 * ComfyUI serves a pack's web folder at /extensions/<folder>/ and reports the pack's nodes with
 * `python_module` "custom_nodes.<folder>", so the folder name in this module's URL identifies our
 * nodes even when the pack is cloned under another name. (Core nodes such as WanImageToVideo also
 * start with "Wan", so the name alone does not.)
 */

/** The pack folder from the URL of a module served under /extensions/<folder>/, or null. */
export function packFolderFromUrl(url) {
  const path = new URL(url).pathname;
  const match = /\/extensions\/([^/]+)\//.exec(path);
  return match ? decodeURIComponent(match[1]) : null;
}

/** Whether a node definition from /object_info is one of this pack's nodes. */
export function isPackNodeDef(nodeData, folder) {
  return Boolean(folder) && nodeData?.python_module === `custom_nodes.${folder}`;
}
