// Agent Chat: the few DOM helpers the page's modules share.
//
// Text-only rendering: createElement + textContent, never innerHTML, so model
// output and user text are never parsed as HTML.

export function el(tag, className, attrs) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (attrs) for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

/**
 * The CSRF token to send as X-CSRFToken: the `csrftoken` cookie when the page can read it, else
 * the page's `{% csrf_token %}` input ("" when neither is there).
 *
 * The cookie first: it is what the server checks against now, and a login in another tab rotates
 * it while this page's forms keep the old token. The input is for when the cookie cannot be read
 * (CSRF_COOKIE_HTTPONLY) or is not used at all (CSRF_USE_SESSIONS); base.html always renders one.
 */
export function csrfToken(doc = document) {
  for (const pair of (doc.cookie || "").split(";")) {
    const [name, ...rest] = pair.trim().split("=");
    if (name !== "csrftoken" || !rest.length) continue;
    try {
      const value = decodeURIComponent(rest.join("="));
      if (value) return value;
    } catch (_) {
      // not URI-encoded text: not a token the server set
    }
  }
  const input = doc.querySelector("input[name=csrfmiddlewaretoken]");
  return input && input.value ? input.value : "";
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
