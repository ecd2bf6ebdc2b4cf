"""RunTranscript: what a run has shown so far — the answer's text and its tool calls' ids.

The executor owns one per run; the callback handler writes the streamed answer into it and
asks it for call ids, so the events and the executor's tool steps always name a call alike.
It also notes when the run first showed something (answer text or a tool call), for the
time to first token that staff review reads.
"""

from __future__ import annotations

import time


class RunTranscript:
    """The answer text streamed so far, and one id per tool call, unique over the run."""

    def __init__(self) -> None:
        self.answer_text = ""
        self.first_output: float | None = None
        """When (`time.time()`) the first answer text or tool call was shown; None until then."""
        self.step = 0
        self._ids: dict[tuple[int, int], str] = {}
        self._used: set[str] = set()

    def begin_step(self, step: int) -> None:
        """The next LLM step starts: call indexes from now on are this step's."""
        self.step = step

    def add_answer(self, text: str) -> None:
        """More of the final answer was streamed."""
        if text:
            self._shown()
        self.answer_text += text

    def call_id(self, index: int, raw_id: str | None) -> str:
        """The id of this step's call at `index`: the model's own id when it gave one, made unique."""
        key = (self.step, index)
        if key not in self._ids:
            self._shown()
            call_id = raw_id or f"call_{self.step}_{index}"
            while call_id in self._used:
                call_id += "_"
            self._used.add(call_id)
            self._ids[key] = call_id
        return self._ids[key]

    def _shown(self) -> None:
        if self.first_output is None:
            self.first_output = time.time()
