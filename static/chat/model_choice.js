// The conversation header's model select: the owner picks which of the assistant's models
// answers the next question. The choice goes over the socket (`set_model`); every tab of the
// conversation shows it when the server says so (a `model` frame, or the `model` of a snapshot),
// so the select always shows what the server stored, never just what this tab asked for.

import { setModelFrame } from "./protocol.js";

export class ModelChoice {
  /**
   * @param {HTMLSelectElement | null} select  the header's select (absent: one model only)
   * @param {(frame: object) => boolean} send  sends a frame; false when the socket is not open
   */
  constructor(select, send) {
    this.select = select;
    this.send = send;
    this.current = select ? select.value : "";
    if (!select) return;
    select.addEventListener("change", () => {
      const wanted = select.value;
      if (wanted === this.current) return;
      if (!this.send(setModelFrame(wanted))) this.show(this.current); // not sent: show what holds
    });
  }

  /** The server's word on the model of the next answers (from any tab, or a snapshot). */
  show(model) {
    if (!this.select || typeof model !== "string") return;
    const offered = Array.from(this.select.options, (option) => option.value);
    if (!offered.includes(model)) return;
    this.current = model;
    this.select.value = model;
    this.select.dataset.model = model;
  }

  /** A refused `set_model` (this tab only): put the select back on the stored choice. */
  refused() {
    this.show(this.current);
  }
}
