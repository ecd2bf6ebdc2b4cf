"""Reading `answer` out of final_answer's JSON arguments while they are typed."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from agent_runtime.answer_stream import AnswerStream


def stream(fragments: list[str]) -> list[str]:
    parser = AnswerStream()
    return [parser.feed(f) for f in fragments]


def test_only_the_answer_text_comes_out():
    pieces = stream(['{"answer": "', "10 + 10", " = 20", '", "tools_used": ["add"]}'])
    assert pieces == ["", "10 + 10", " = 20", ""]


def test_escapes_split_anywhere_come_out_decoded():
    raw = json.dumps({"answer": 'say "caf\u00e9" \\ now\n', "tools_used": []})
    encoded = raw.replace("\u00e9", "\\u00e9")
    assert "".join(stream(list(encoded))) == 'say "caf\u00e9" \\ now\n'


def test_a_surrogate_pair_split_between_fragments_is_one_emoji():
    pieces = stream(['{"answer": "ok \\ud83d', "\\ude00", '!"}'])
    assert pieces == ["ok ", "\U0001f600", "!"]


def test_the_answer_may_come_after_other_members():
    text = '{"tools_used": ["add", "x\\"]"], "answer": "fine", "extra": {"answer": "no"}}'
    assert "".join(stream(list(text))) == "fine"


@given(
    answer=st.text(),
    tools=st.lists(st.text(max_size=5), max_size=3),
    ascii_only=st.booleans(),
    cuts=st.lists(st.integers(min_value=1, max_value=7), min_size=1),
)
def test_any_answer_cut_anywhere_streams_exactly(answer, tools, ascii_only, cuts):
    raw = json.dumps({"answer": answer, "tools_used": tools}, ensure_ascii=ascii_only)
    fragments, position, turn = [], 0, 0
    while position < len(raw):
        size = cuts[turn % len(cuts)]
        fragments.append(raw[position : position + size])
        position += size
        turn += 1
    assert "".join(stream(fragments)) == answer
