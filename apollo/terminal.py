"""Text bound for a terminal. Names, guidance, agent output and evaluator messages come from
people and models; printed raw, an ESC or BEL would be obeyed by the terminal (colours, titles,
cursor moves) and a bidirectional override would reorder what is read. Every CLI print of such
text goes through `safe`, which shows those characters as escapes instead."""

from __future__ import annotations

import re

# C0 and C1 controls (tab and newline aside), DEL, and the bidirectional marks, embeddings,
# overrides and isolates (U+061C, U+200E-F, U+202A-E, U+2066-9), plus the Unicode line and
# paragraph separators, which some terminals break lines on.
_UNSAFE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_IN_LINES = re.compile(f"[{_UNSAFE}]")
_IN_A_LINE = re.compile(f"[{_UNSAFE}\n]")


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: str, lines: bool = False) -> str:
    """`text` with control characters and bidi overrides shown as escapes (ESC as `\\x1b`,
    U+202E as `\\u202e`). Tabs are kept; newlines too when `lines` is true (multi-line
    output), else they are escaped like the rest."""
    return (_IN_LINES if lines else _IN_A_LINE).sub(_escape, text)
