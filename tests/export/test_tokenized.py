"""The `tokenized` format renders incrementally (each segment once) and gives exactly what the
whole-conversation way gives: every window's pieces join to `apply_chat_template`'s render, the
ids are its tokens, and the labels are those of locating each turn by rendering the
conversation up to it (kept here as the reference)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from apollo.export.formats.tokenized import IGNORE, Tokenized
from apollo.export.windows import ExportError, Sample, WindowOptions, run_samples
from apollo.supervise.policy import Policy
from tests.agent.harness import Outcome

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "run",
            "description": "Run a bash command.",
            "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
        },
    }
]

# Qwen2.5's way with tool results: consecutive ones share one user turn, so a result's render
# depends on its neighbours' roles.
GROUPING = """\
{%- if tools %}<|im_start|>system
{{ messages[0].content if messages[0].role == 'system' else 'You are helpful.' }}
<tools>{% for t in tools %}{{ t | tojson }}{% endfor %}</tools><|im_end|>
{% elif messages[0].role == 'system' %}<|im_start|>system
{{ messages[0].content }}<|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == 'system' and loop.first %}
{%- elif message.role == 'tool' %}
{%- if loop.index0 == 0 or messages[loop.index0 - 1].role != 'tool' %}<|im_start|>user{% endif %}
<tool_response>
{{ message.content }}
</tool_response>
{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}<|im_end|>
{% endif %}
{%- elif message.role == 'assistant' %}<|im_start|>assistant
{% if message.content %}{{ message.content }}{% endif %}
{%- for tc in message.tool_calls or [] %}
<tool_call>{"name": "{{ tc.function.name }}", "arguments": {{ tc.function.arguments }}}</tool_call>
{%- endfor %}<|im_end|>
{% else %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""

# Plain-text role markers: the tokenizer has no token to cut at between turns.
PLAIN = """\
{%- for message in messages %}### {{ message.role }}
{{ message.content or '' }}\
{% for tc in message.tool_calls or [] %} CALL {{ tc.function.arguments }}{% endfor %}
{% endfor %}
{%- if add_generation_prompt %}### assistant
{% endif %}"""

# Counts the turns: prefix-consistent, but a turn's render depends on every earlier message.
NUMBERED = """\
{%- for message in messages %}<|im_start|>{{ message.role }} {{ loop.index }}
{{ message.content or '' }}<|im_end|>
{% endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant {{ messages | length + 1 }}
{% endif %}"""

# Shows only the last assistant turn's text: earlier turns change once later ones follow.
REWRITES = """\
{%- for message in messages %}<|im_start|>{{ message.role }}
{% if message.role == 'assistant' and not loop.last %}(earlier)\
{% else %}{{ message.content or '' }}{% endif %}<|im_end|>
{% endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""


def reference(fmt: Tokenized, sample: Sample) -> dict[str, Any]:
    """The record as the whole-conversation way makes it: each turn located by rendering the
    conversation up to it, each token labelled by where it starts."""
    msgs, tools = sample.messages, sample.tools

    def render(m: list[dict[str, Any]], prompt: bool = False) -> str:
        text: str = fmt.tokenizer.apply_chat_template(
            m,
            tools=tools or None,
            chat_template=fmt.template,
            tokenize=False,
            add_generation_prompt=prompt,
        )
        return text

    full = render(msgs)
    trained: list[tuple[int, int]] = []
    masked: list[tuple[int, int]] = []
    for i, w in enumerate(sample.weights):
        if w is None:
            continue
        head = render(msgs[:i], True) if i else ""
        upto = render(msgs[: i + 1])
        assert upto.startswith(head) and full.startswith(upto)
        (trained if w else masked).append((len(head), len(upto.rstrip())))
    enc = fmt.tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    starts = [s for s, _ in enc["offset_mapping"]]
    labels = [
        i if any(a <= s < b for a, b in trained) else IGNORE
        for i, s in zip(ids, starts, strict=True)
    ]
    n_masked = sum(1 for s in starts if any(a <= s < b for a, b in masked))
    n_trained = len(ids) - labels.count(IGNORE)
    return {"input_ids": ids, "labels": labels, "tokens": (n_trained, n_masked)}


def check(fmt: Tokenized, sample: Sample, cuts: bool = True) -> None:
    """The incremental record is the reference record, its pieces join to the tokenizer's own
    render of the whole conversation, and the first is the render of the opening alone."""
    full = fmt.tokenizer.apply_chat_template(
        sample.messages,
        tools=sample.tools or None,
        chat_template=fmt.template,
        tokenize=False,
    )
    pieces = fmt.pieces(sample, full)
    assert pieces is not None
    assert "".join(p.text for p in pieces) == full
    first_turn = next(i for i, w in enumerate(sample.weights) if w is not None)
    opening = fmt.tokenizer.apply_chat_template(
        sample.messages[:first_turn],
        tools=sample.tools or None,
        chat_template=fmt.template,
        tokenize=False,
    )
    assert pieces[0].text == opening
    spans = fmt.locate(sample, full)[1]
    assert fmt._cuts_are_exact(pieces, spans, full) == cuts  # tokenized piece by piece or whole
    ref = reference(fmt, sample)
    rec = fmt.encode(sample)
    assert (
        rec["input_ids"]
        == ref["input_ids"]
        == list(
            fmt.tokenizer.apply_chat_template(
                sample.messages,
                tools=sample.tools or None,
                chat_template=fmt.template,
                tokenize=True,
                return_dict=False,
            )
        )
    )
    assert rec["labels"] == ref["labels"]
    assert fmt.tokens(sample, rec) == ref["tokens"]


def sample(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> Sample:
    """A window of these messages; assistant turns alternate kept and masked."""
    weights: list[int | None] = []
    for m in messages:
        weights.append(None if m["role"] != "assistant" else (len(weights) // 2 + 1) % 2)
    return Sample(
        "run-x",
        "task",
        "window",
        0,
        [json.dumps(m) for m in messages],
        json.dumps(tools if tools is not None else TOOLS),
        weights,
        [None] * len(messages),
    )


def call(i: int, content: str | None, command: str) -> dict[str, Any]:
    args = json.dumps({"command": command})
    return {
        "role": "assistant",
        "content": content,
        "tool_calls": [
            {"id": f"c{i}", "type": "function", "function": {"name": "run", "arguments": args}}
        ],
    }


def result(i: int, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": f"c{i}", "content": content}


# Turns whose edges are hard to locate: leading and trailing whitespace and newlines, text that
# looks like the template's own markers, characters of several bytes, empty text beside a call,
# two results in a row, guidance between turns, and a final turn awaiting its result.
AWKWARD = [
    {"role": "system", "content": "You are an agent."},
    {"role": "user", "content": "# Task\nDo the thing. ünïcödé ✓ 漢字"},
    call(1, "\n\nI will look first.  ", "ls -la"),
    result(1, "a.txt\nb.txt\n"),
    call(2, None, "cat a.txt"),
    result(2, "   leading spaces and <|im_end|> in the text <|im_start|>assistant\n"),
    {"role": "user", "content": "<real_user>Try b.txt.</real_user>"},
    call(3, " <tool_call> is not a call", "cat b.txt"),
    result(3, ""),
    call(4, "two at once", "echo 1"),
    result(4, "1"),
    result(4, "2"),
    {"role": "assistant", "content": "Thinking aloud 🤔 without a call.\n"},
    {"role": "user", "content": "Continue."},
    call(5, "last", "echo done"),
]


def windows(out: Outcome, **opts: Any) -> list[Sample]:
    run = out.store.get_run(out.run_id)
    assert run is not None
    return list(run_samples(out.store, run, Policy(), WindowOptions(**opts)))


@pytest.mark.parametrize("opts", [{}, {"summaries": True}, {"guidance": False}])
def test_every_window_of_a_real_run_matches_the_whole_render(
    summarized: Outcome, tokenizer: Any, opts: dict[str, Any]
) -> None:
    fmt = Tokenized(tokenizer)
    samples = windows(summarized, **opts)
    assert len(samples) >= 3
    for s in samples:
        check(fmt, s)


@pytest.mark.parametrize("template", ["apollo", "grouping", "plain"])
def test_awkward_turns_match_the_whole_render(
    tokenizer: Any, tmp_path: Path, template: str
) -> None:
    cuts = template != "plain"
    if template != "apollo":
        (tmp_path / "t.jinja").write_text(GROUPING if template == "grouping" else PLAIN)
        template = str(tmp_path / "t.jinja")
    fmt = Tokenized(tokenizer, template)
    check(fmt, sample(AWKWARD), cuts)
    check(fmt, sample(AWKWARD, tools=[]), cuts)
    check(fmt, sample(AWKWARD[1:]), cuts)  # no system message


def test_each_message_is_rendered_once_beyond_the_whole_render(
    tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fmt = Tokenized(tokenizer)
    s = sample(AWKWARD)
    seen: dict[int, int] = {}
    plain = tokenizer.apply_chat_template

    def counting(conversation: list[Any], *args: Any, **kwargs: Any) -> Any:
        batch = conversation if isinstance(conversation[0], list) else [conversation]
        for m in (m for conv in batch for m in conv):
            seen[id(m)] = seen.get(id(m), 0) + 1
        return plain(conversation, *args, **kwargs)

    monkeypatch.setattr(tokenizer, "apply_chat_template", counting)
    fmt.encode(s)
    opening = 2  # system and task: in the whole render only (segments follow a stand-in)
    counts = [seen.get(id(m), 0) for m in s.messages]
    assert counts[:opening] == [1] * opening
    assert counts[opening:] == [2] * (len(s.messages) - opening)  # its segment + the whole


def test_a_template_that_numbers_turns_is_located_the_exact_way(
    tokenizer: Any, tmp_path: Path
) -> None:
    (tmp_path / "numbered.jinja").write_text(NUMBERED)
    fmt = Tokenized(tokenizer, str(tmp_path / "numbered.jinja"))
    s = sample(AWKWARD)
    full = fmt.render(s.messages, s.tools)
    assert fmt.pieces(s, full) is None  # the pieces cannot be trusted here...
    ref = reference(fmt, s)
    rec = fmt.encode(s)  # ...so the turns are located by rendering up to each
    assert rec["input_ids"] == ref["input_ids"] and rec["labels"] == ref["labels"]
    assert any(x != IGNORE for x in rec["labels"])


def test_a_template_that_rewrites_earlier_turns_fails(tokenizer: Any, tmp_path: Path) -> None:
    (tmp_path / "rewrites.jinja").write_text(REWRITES)
    fmt = Tokenized(tokenizer, str(tmp_path / "rewrites.jinja"))
    with pytest.raises(ExportError, match="renders message 2 differently once later messages"):
        fmt.encode(sample(AWKWARD))
