"""The bugs bug-patch draws from: for each function its specification, the buggy version the
workspace starts with, the right fix, three plausible wrong fixes, and how to draw inputs.

Every version is a complete kit.py, so applying a candidate is copying its file."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Template:
    name: str
    signature: str
    doc: str
    original: str  # the body the workspace starts with (buggy)
    right: tuple[str, str]  # (what the fix says it does, body)
    wrong: tuple[tuple[str, str], ...]
    draw: Callable[[random.Random], list[Any]]  # the arguments of one test case
    edge: tuple[list[Any], ...]  # cases every visible test set includes

    def source(self, body: str, note: str) -> str:
        return (
            f'"""{note}"""\n\n\ndef {self.signature}:\n    """{self.doc}"""\n'
            + "".join(f"    {line}\n" if line else "\n" for line in body.strip("\n").split("\n"))
        )


def _ints(rng: random.Random, low: int, high: int, n: int) -> list[int]:
    return [rng.randint(low, high) for _ in range(n)]


CHUNK = Template(
    "chunk",
    "chunk(items, size)",
    "Split a list into consecutive chunks of `size` items; the last chunk may be shorter.\n\n"
    "    chunk([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]; chunk([], 3) == []\n    ",
    "return [items[i:i + size] for i in range(0, len(items) - size, size)]",
    ("step through the whole list", "return [items[i:i + size] for i in range(0, len(items), size)]"),
    (
        (
            "stop at the last full chunk",
            "return [items[i:i + size] for i in range(0, len(items) - size + 1, size)]",
        ),
        (
            "include the end of the list",
            "return [items[i:i + size] for i in range(0, len(items) + 1, size)]",
        ),
        (
            "pad the last chunk to full size",
            "out = [items[i:i + size] for i in range(0, len(items), size)]\n"
            "if out and len(out[-1]) < size:\n"
            "    out[-1] = out[-1] + [None] * (size - len(out[-1]))\n"
            "return out",
        ),
    ),
    lambda rng: [_ints(rng, 0, 9, rng.randint(0, 13)), rng.randint(1, 5)],
    ([[1, 2, 3, 4, 5], 2], [[1, 2, 3, 4], 2], [[], 3], [[7], 1]),
)

MEDIAN = Template(
    "median",
    "median(values)",
    "The median of a non-empty list of numbers: the middle value of the sorted list, or the\n"
    "    mean of the two middle values when the list has an even length.\n\n"
    "    median([3, 1, 2]) == 2; median([4, 1, 3, 2]) == 2.5\n    ",
    "return values[len(values) // 2]",
    (
        "sort, and average the two middle values of an even list",
        "s = sorted(values)\nn = len(s)\n"
        "return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2",
    ),
    (
        ("sort first", "s = sorted(values)\nreturn s[len(s) // 2]"),
        ("sort, and take the lower middle value", "s = sorted(values)\nreturn s[(len(s) - 1) // 2]"),
        (
            "sort, and average the middle values in whole numbers",
            "s = sorted(values)\nn = len(s)\n"
            "return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) // 2",
        ),
    ),
    lambda rng: [_ints(rng, -20, 20, rng.choice([2, 4, 6, 8, 3, 5]))],
    ([[3, 1, 2]], [[4, 1, 3, 2]], [[5, 2]], [[9]], [[1, 2, 4, 8]]),
)

RUNS = Template(
    "encode_runs",
    "encode_runs(text)",
    "Run-length encode a string: each run of one repeated character becomes the character\n"
    "    and the length of the run. Characters are compared exactly (case matters).\n\n"
    "    encode_runs('aaabcc') == 'a3b1c2'; encode_runs('') == ''\n    ",
    "out = []\nfor i, ch in enumerate(text):\n"
    "    if i and ch != text[i - 1]:\n"
    "        out.append(f'{text[i - 1]}{count}')\n"
    "    count = count + 1 if i and ch == text[i - 1] else 1\n"
    "return ''.join(out)",
    (
        "close the last run too",
        "out = []\ncount = 0\nfor i, ch in enumerate(text):\n"
        "    if i and ch != text[i - 1]:\n"
        "        out.append(f'{text[i - 1]}{count}')\n"
        "        count = 0\n"
        "    count += 1\n"
        "if text:\n    out.append(f'{text[-1]}{count}')\n"
        "return ''.join(out)",
    ),
    (
        (
            "count each character once",
            "out = {}\nfor ch in text:\n    out[ch] = out.get(ch, 0) + 1\n"
            "return ''.join(f'{ch}{n}' for ch, n in out.items())",
        ),
        (
            "close the last run, and leave out counts of one",
            "out = []\ncount = 0\nfor i, ch in enumerate(text):\n"
            "    if i and ch != text[i - 1]:\n"
            "        out.append(text[i - 1] + (str(count) if count > 1 else ''))\n"
            "        count = 0\n"
            "    count += 1\n"
            "if text:\n    out.append(text[-1] + (str(count) if count > 1 else ''))\n"
            "return ''.join(out)",
        ),
        (
            "close the last run, comparing letters without case",
            "out = []\ncount = 0\nlow = text.lower()\nfor i, ch in enumerate(low):\n"
            "    if i and ch != low[i - 1]:\n"
            "        out.append(f'{low[i - 1]}{count}')\n"
            "        count = 0\n"
            "    count += 1\n"
            "if text:\n    out.append(f'{low[-1]}{count}')\n"
            "return ''.join(out)",
        ),
    ),
    lambda rng: ["".join(rng.choice("aabbcA") * rng.randint(1, 3) for _ in range(rng.randint(1, 6)))],
    (["aaabcc"], [""], ["abab"], ["aAa"], ["zz"]),
)

ROMAN = Template(
    "to_roman",
    "to_roman(n)",
    "The Roman numeral of a whole number from 1 to 3999, with the subtractive forms IV, IX,\n"
    "    XL, XC, CD and CM.\n\n"
    "    to_roman(1994) == 'MCMXCIV'; to_roman(8) == 'VIII'\n    ",
    "out = ''\nfor value, sym in [(1000, 'M'), (500, 'D'), (100, 'C'), (50, 'L'), (10, 'X'),\n"
    "                   (5, 'V'), (1, 'I')]:\n"
    "    while n >= value:\n        out += sym\n        n -= value\n"
    "return out",
    (
        "add all six subtractive pairs to the table",
        "out = ''\nfor value, sym in [(1000, 'M'), (900, 'CM'), (500, 'D'), (400, 'CD'), (100, 'C'),\n"
        "                   (90, 'XC'), (50, 'L'), (40, 'XL'), (10, 'X'), (9, 'IX'), (5, 'V'),\n"
        "                   (4, 'IV'), (1, 'I')]:\n"
        "    while n >= value:\n        out += sym\n        n -= value\n"
        "return out",
    ),
    (
        (
            "add the subtractive pairs of the ones",
            "out = ''\nfor value, sym in [(1000, 'M'), (500, 'D'), (100, 'C'), (50, 'L'), (10, 'X'),\n"
            "                   (9, 'IX'), (5, 'V'), (4, 'IV'), (1, 'I')]:\n"
            "    while n >= value:\n        out += sym\n        n -= value\n"
            "return out",
        ),
        (
            "add the subtractive pairs of the ones and tens",
            "out = ''\nfor value, sym in [(1000, 'M'), (500, 'D'), (100, 'C'), (90, 'XC'), (50, 'L'),\n"
            "                   (40, 'XL'), (10, 'X'), (9, 'IX'), (5, 'V'), (4, 'IV'), (1, 'I')]:\n"
            "    while n >= value:\n        out += sym\n        n -= value\n"
            "return out",
        ),
        (
            "add all six subtractive pairs, each symbol used once",
            "out = ''\nfor value, sym in [(1000, 'M'), (900, 'CM'), (500, 'D'), (400, 'CD'), (100, 'C'),\n"
            "                   (90, 'XC'), (50, 'L'), (40, 'XL'), (10, 'X'), (9, 'IX'), (5, 'V'),\n"
            "                   (4, 'IV'), (1, 'I')]:\n"
            "    if n >= value:\n        out += sym\n        n -= value\n"
            "return out",
        ),
    ),
    lambda rng: [rng.choice([rng.randint(1, 3999), rng.randint(1, 99), rng.randint(400, 999)])],
    ([1994], [8], [4], [40], [3888], [949]),
)

TEMPLATES = (CHUNK, MEDIAN, RUNS, ROMAN)
