// Agent Chat: the few DOM helpers view.js and approvals.js share.
//
// Text-only rendering: createElement + textContent, never innerHTML, so model
// output and user text are never parsed as HTML.

export function el(tag, className, attrs) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (attrs) for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

export function setAttr(node, name, value) {
  if (value === null || value === undefined || value === false) {
    if (node.hasAttribute(name)) node.removeAttribute(name);
  } else if (node.getAttribute(name) !== String(value)) {
    node.setAttribute(name, String(value));
  }
}

/** Streaming text: append to one Text node when the new text extends the old one. */
export function setStreamText(node, text) {
  let textNode = node.firstChild;
  if (!textNode || textNode.nodeType !== 3 || node.childNodes.length !== 1) {
    node.textContent = "";
    textNode = node.appendChild(document.createTextNode(""));
  }
  const current = textNode.data;
  if (current === text) return;
  if (text.length > current.length && text.startsWith(current)) textNode.appendData(text.slice(current.length));
  else textNode.data = text;
}
