/**
 * DOM helpers shared by the console pages.
 *
 * Every piece of agent or human text reaches the page through `el`/`text` below, which only
 * ever create text nodes: the console never parses data as HTML, so a `<script>` or an
 * `onerror=` inside a guidance or an observation stays visible, inert text.
 */

/** Attributes `el` may set. Event handlers (`on*`), `href`, `src` and `style` are not among
 * them: links are built by `link` from fixed paths, and styling goes through classes. */
const SAFE_ATTRS = new Set([
  "class", "id", "title", "type", "name", "value", "placeholder", "for", "role", "hidden",
  "disabled", "checked", "min", "max", "step", "colspan", "tabindex", "autocomplete",
  "aria-label", "aria-live", "aria-pressed", "aria-sort", "aria-expanded", "data-id",
  "data-step", "data-key", "data-state", "data-kind", "datetime", "maxlength", "required",
  "rows", "open",
]);

// C0 controls except tab and newline, DEL, C1 controls, and the bidi overrides and isolates
// that can make text read differently from what it is ("trojan source").
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/**
 * Makes control characters visible: C0 controls become their Control Pictures (ESC → ␛),
 * DEL becomes ␡, and C1 controls and bidi overrides become U+FFFD, so an annotator sees that
 * something odd is in the text instead of having the terminal or the layout act on it.
 * @param {unknown} value
 * @returns {string}
 */
function visible(value) {
  const s = value === null || value === undefined ? "" : String(value);
  return s.replace(CONTROL, (c) => {
    const code = c.charCodeAt(0);
    if (code < 0x20) return String.fromCharCode(0x2400 + code);
    if (code === 0x7f) return "\u2421";
    return "\ufffd";
  });
}

/**
 * A text node holding `value` with its control characters made visible.
 * @param {unknown} value
 * @returns {Text}
 */
export function text(value) {
  return document.createTextNode(visible(value));
}

/**
 * Creates an element. Children that are strings or numbers become text nodes; attributes
 * outside SAFE_ATTRS are refused loudly, so a mistake cannot slip a handler or a URL in.
 * @param {string} tag
 * @param {Record<string, string|number|boolean|null|undefined>} [attrs]
 * @param {...(Node|string|number|null|undefined|false)} children
 * @returns {HTMLElement}
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (!SAFE_ATTRS.has(name)) throw new Error(`el(): attribute ${name} is not allowed`);
    if (value === false || value === null || value === undefined) continue;
    node.setAttribute(name, value === true ? "" : visible(value));
  }
  append(node, ...children);
  return node;
}

/**
 * Appends children (nodes, or values shown as text), skipping empty ones.
 * @param {Node} parent
 * @param {...(Node|string|number|null|undefined|false)} children
 */
export function append(parent, ...children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(child instanceof Node ? child : text(child));
  }
}

/**
 * Replaces all children of `parent`.
 * @param {Node} parent
 * @param {...(Node|string|number|null|undefined|false)} children
 */
export function replace(parent, ...children) {
  parent.replaceChildren();
  append(parent, ...children);
}

/**
 * A link to a page of this console. The path is built from a fixed prefix and an encoded
 * id, so data can never choose the scheme (no `javascript:`) or the host.
 * @param {"run"} page
 * @param {string} id
 * @param {...(Node|string|number)} children
 * @returns {HTMLAnchorElement}
 */
export function link(page, id, ...children) {
  const a = /** @type {HTMLAnchorElement} */ (el("a", {}, ...children));
  if (page !== "run") throw new Error(`link(): unknown page ${page}`);
  a.href = `/runs/${encodeURIComponent(String(id))}`;
  return a;
}

/**
 * The element with this id; throws when the template lacks it, so a missing element fails
 * loudly in the browser tests instead of silently disabling a feature.
 * @param {string} id
 * @returns {HTMLElement}
 */
export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`missing #${id} in the page`);
  return node;
}
