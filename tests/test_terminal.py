"""Terminal-safe text: what could steer a terminal is shown as an escape, the rest as it is."""

from __future__ import annotations

import pytest

from apollo.terminal import safe


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[2J\x1b]0;title\x07", "\\x1b[2J\\x1b]0;title\\x07"),  # ESC, OSC, BEL
        ("a\rb\x08c\x00d\x7f", "a\\x0db\\x08c\\x00d\\x7f"),  # CR, backspace, NUL, DEL
        ("\x9b31m", "\\x9b31m"),  # C1 CSI
        ("txt\u202eexe.js", "txt\\u202eexe.js"),  # right-to-left override
        ("\u202a\u202b\u202c\u202d", "\\u202a\\u202b\\u202c\\u202d"),
        ("\u2066x\u2067y\u2068z\u2069", "\\u2066x\\u2067y\\u2068z\\u2069"),  # isolates
        ("\u200e\u200f\u061c", "\\u200e\\u200f\\u061c"),  # marks
        ("line\u2028break", "line\\u2028break"),
        ("tab\tkept, é, 漢字, emoji 🙂", "tab\tkept, é, 漢字, emoji 🙂"),
    ],
)
def test_controls_and_bidi_are_escaped(raw: str, shown: str) -> None:
    assert safe(raw) == shown
    assert safe(shown) == shown  # escaping twice changes nothing


def test_newlines_are_kept_only_for_multi_line_output() -> None:
    assert safe("one\ntwo\x1b") == "one\\x0atwo\\x1b"
    assert safe("one\ntwo\x1b", lines=True) == "one\ntwo\\x1b"
