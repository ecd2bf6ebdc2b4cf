// Agent Chat: versions of messages (regenerate, edit, "2 / 3" arrows), in the DOM.
//
// The server keeps every version: a regenerated answer is a sibling of the earlier answers,
// an edited question a sibling of the earlier question. A snapshot lists the branch on screen,
// each message with its `versions` (ids, oldest first). Choosing another version, editing or
// regenerating sends a frame (protocol.js); the server answers every tab with a new snapshot,
// so all tabs show the same branch. Nothing here changes the model optimistically.

import { el, setText } from "./dom.js";

/** "2 / 3": where `id` is among `versions`, or null when there is only one version. */
export function versionPosition(versions, id) {
  if (!Array.isArray(versions) || versions.length < 2) return null;
  const index = versions.indexOf(id);
  if (index < 0) return null;
  return { index, count: versions.length, previous: versions[index - 1] ?? null, next: versions[index + 1] ?? null };
}

/** The "‹ 2 / 3 ›" control; `onChoose(messageId)` when an arrow is pressed. */
export function createVersionSwitcher(onChoose) {
  const root = el("div", "versions", { "data-testid": "versions", role: "group", "aria-label": "Versions" });
  const prev = el("button", "versions__arrow", { type: "button", "data-testid": "version-previous", "aria-label": "Previous version" });
  prev.textContent = "‹";
  const label = el("span", "versions__label", { "data-testid": "version-label" });
  const next = el("button", "versions__arrow", { type: "button", "data-testid": "version-next", "aria-label": "Next version" });
  next.textContent = "›";
  root.append(prev, label, next);
  const switcher = { root, prev, label, next, position: null };
  prev.addEventListener("click", () => switcher.position && switcher.position.previous !== null && onChoose(switcher.position.previous));
  next.addEventListener("click", () => switcher.position && switcher.position.next !== null && onChoose(switcher.position.next));
  root.hidden = true;
  return switcher;
}

/** Show where `msg` is among its versions; arrows are disabled while `busy` (an answer is being written). */
export function updateVersionSwitcher(switcher, msg, busy) {
  const position = versionPosition(msg.versions, msg.id);
  switcher.position = position;
  switcher.root.hidden = position === null;
  if (!position) return;
  setText(switcher.label, `${position.index + 1} / ${position.count}`);
  switcher.prev.disabled = busy || position.previous === null;
  switcher.next.disabled = busy || position.next === null;
}

/**
 * The inline editor of a question: a text area with "Save & send" and "Cancel".
 * `onSave(text)` returns whether the edit was sent (the editor then closes).
 */
export function createQuestionEditor({ onSave, onClose }) {
  const form = el("form", "edit", { "data-testid": "edit-form" });
  const area = el("textarea", "edit__input", { "data-testid": "edit-input", rows: "3", "aria-label": "Edit your message" });
  const actions = el("div", "edit__actions");
  const cancel = el("button", "btn btn--ghost btn--sm", { type: "button", "data-testid": "edit-cancel" });
  cancel.textContent = "Cancel";
  const save = el("button", "btn btn--primary btn--sm", { type: "submit", "data-testid": "edit-save" });
  save.textContent = "Save & send";
  actions.append(cancel, save);
  form.append(area, actions);
  form.hidden = true;
  const editor = { form, area, save };
  const close = () => {
    form.hidden = true;
    onClose();
  };
  cancel.addEventListener("click", close);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = area.value;
    if (text.trim() === "") return;
    if (onSave(text)) close();
  });
  area.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      close();
    } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  area.addEventListener("input", () => (save.disabled = area.value.trim() === ""));
  return editor;
}

/** Open the editor on `text`, focused, with the caret at the end. */
export function openQuestionEditor(editor, text) {
  editor.form.hidden = false;
  editor.area.value = text;
  editor.save.disabled = text.trim() === "";
  editor.area.style.height = "auto";
  editor.area.style.height = `${Math.min(editor.area.scrollHeight + 2, 320)}px`;
  editor.area.focus();
  editor.area.setSelectionRange(text.length, text.length);
}
