// The page's one CSRF token for fetch (static/chat/dom.js), which feedback.js and sidebar.js send.
// Run: node --test tests/js/

import test from "node:test";
import assert from "node:assert/strict";

import { csrfToken } from "../../static/chat/dom.js";

/** A document with these cookies and, when `input` is given, a {% csrf_token %} input of that value. */
const page = (cookie, input) => ({
  cookie,
  querySelector: (selector) => {
    assert.equal(selector, "input[name=csrfmiddlewaretoken]");
    return input === undefined ? null : { value: input };
  },
});

test("the cookie is the token: a rotated one wins over the page's older form token", () => {
  assert.equal(csrfToken(page("sessionid=s; csrftoken=fromCookie; theme=dark", "fromForm")), "fromCookie");
  assert.equal(csrfToken(page("csrftoken=a%2Bb", "fromForm")), "a+b");
});

test("an HttpOnly or absent cookie: the page's form token", () => {
  assert.equal(csrfToken(page("sessionid=s", "fromForm")), "fromForm");
  assert.equal(csrfToken(page("", "fromForm")), "fromForm");
  assert.equal(csrfToken(page("csrftoken=", "fromForm")), "fromForm");
  assert.equal(csrfToken(page("csrftoken=%E0%A4%A", "fromForm")), "fromForm");
});

test("a cookie whose name only ends in csrftoken is another cookie", () => {
  assert.equal(csrfToken(page("mycsrftoken=other", "fromForm")), "fromForm");
});

test("neither: an empty token", () => {
  assert.equal(csrfToken(page("")), "");
  assert.equal(csrfToken(page("", "")), "");
});
