"""Read the `answer` string out of a JSON object while it is still being typed.

The model types `final_answer`'s arguments as JSON fragments, for example
`{"answer": "caf`, `\\u00e9 \\"ok`, `\\""}`. `AnswerStream.feed` takes each fragment
and returns only the newly decoded characters of `answer`: clean text, never
quotes, escapes or half a surrogate pair.
"""

from __future__ import annotations

_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_WHITESPACE = " \t\r\n"
ANSWER_KEY = "answer"


class AnswerStream:
    """Incremental scanner of one JSON object that yields the text of its `answer` member."""

    def __init__(self) -> None:
        self._state = "start"
        self._key: list[str] = []
        self._key_done = ""
        self._in_answer = False
        self._answered = False
        self._escape: str | None = None
        self._high_surrogate: int | None = None
        self._depth = 0
        self._skip_in_string = False
        self._skip_escape = False
        self.text = ""

    def feed(self, fragment: str) -> str:
        """Consume a fragment; return the answer text it completes (possibly empty)."""
        out: list[str] = []
        for char in fragment:
            self._step(char, out)
        piece = "".join(out)
        self.text += piece
        return piece

    def _step(self, char: str, out: list[str]) -> None:
        state = self._state
        if state == "start":
            if char == "{":
                self._state = "key_or_end"
        elif state == "key_or_end":
            if char == '"':
                self._key = []
                self._state = "key"
            elif char == "}":
                self._state = "end"
        elif state == "key":
            self._read_key(char)
        elif state == "colon":
            if char == ":":
                self._state = "value"
        elif state == "value":
            self._start_value(char, out)
        elif state == "string":
            self._read_string(char, out)
        elif state == "skip":
            self._skip_value(char)

    def _read_key(self, char: str) -> None:
        if self._skip_escape:
            self._skip_escape = False
            self._key.append(char)
        elif char == "\\":
            self._skip_escape = True
        elif char == '"':
            self._key_done = "".join(self._key)
            self._state = "colon"
        else:
            self._key.append(char)

    def _start_value(self, char: str, out: list[str]) -> None:
        if char in _WHITESPACE:
            return
        if char == '"':
            self._in_answer = self._key_done == ANSWER_KEY and not self._answered
            self._state = "string"
            return
        self._state = "skip"
        self._depth = 0
        self._skip_value(char)

    def _read_string(self, char: str, out: list[str]) -> None:
        if self._escape is not None:
            self._read_escape(char, out)
        elif char == "\\":
            self._escape = ""
        elif char == '"':
            self._flush_surrogate(out)
            if self._in_answer:
                self._answered = True
            self._in_answer = False
            self._state = "key_or_end"
        else:
            self._emit(char, out)

    def _read_escape(self, char: str, out: list[str]) -> None:
        escape = self._escape or ""
        if not escape:
            if char == "u":
                self._escape = "u"
                return
            self._escape = None
            self._emit(_ESCAPES.get(char, char), out)
            return
        escape += char
        if len(escape) < 5:
            self._escape = escape
            return
        self._escape = None
        try:
            code = int(escape[1:], 16)
        except ValueError:
            self._emit("\ufffd", out)
            return
        self._emit_code_unit(code, out)

    def _emit_code_unit(self, code: int, out: list[str]) -> None:
        if 0xD800 <= code <= 0xDBFF:
            self._flush_surrogate(out)
            self._high_surrogate = code
        elif 0xDC00 <= code <= 0xDFFF and self._high_surrogate is not None:
            high, self._high_surrogate = self._high_surrogate, None
            self._emit(chr(0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00)), out)
        else:
            self._emit(chr(code) if not 0xD800 <= code <= 0xDFFF else "\ufffd", out)

    def _flush_surrogate(self, out: list[str]) -> None:
        if self._high_surrogate is not None:
            self._high_surrogate = None
            if self._in_answer:
                out.append("\ufffd")

    def _emit(self, text: str, out: list[str]) -> None:
        if self._high_surrogate is not None:
            self._flush_surrogate(out)
        if self._in_answer:
            out.append(text)

    def _skip_value(self, char: str) -> None:
        if self._skip_in_string:
            if self._skip_escape:
                self._skip_escape = False
            elif char == "\\":
                self._skip_escape = True
            elif char == '"':
                self._skip_in_string = False
        elif char == '"':
            self._skip_in_string = True
        elif char in "[{":
            self._depth += 1
        elif char in "]}":
            if self._depth == 0:
                self._state = "end"
            else:
                self._depth -= 1
        elif char == "," and self._depth == 0:
            self._state = "key_or_end"
