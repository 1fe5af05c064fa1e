"""The ReAct loop (docs/design.md "A step"): every step reads its context from the log and writes
everything it does back to it, so a killed runner resumes exactly where it stopped."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import Field

from apollo.agent.condense import Condenser, SummarizingCondenser
from apollo.agent.context import ContextView, replay
from apollo.agent.inbox import Inbox
from apollo.agent.prompts import prompt
from apollo.env.evaluate import EVALUATOR_ERROR, evaluate
from apollo.env.task import Task
from apollo.env.tools import declare
from apollo.env.tools.base import ToolContext, ToolResult
from apollo.env.tools.registry import ToolBox, not_a_tool
from apollo.env.workspace import Workspace
from apollo.llm.base import ChatModel, Completion, ModelError, RetryNotice
from apollo.llm.toolparse import unknown_tools
from apollo.log import schema
from apollo.log.actions import POLL_TOOLS, call_arguments, call_digest
from apollo.log.calls import encode_input
from apollo.log.events import Event, NewEvent, RunStatus, canonical_json
from apollo.log.outcome import resumable
from apollo.log.store import Store


@dataclass
class AgentConfig:
    """Knobs of the loop that are not part of the task."""

    # Summarize when the context would pass this many tokens (estimated).
    summary_threshold_tokens: int = 100_000
    # Sampling parameters passed to the model on every act call.
    params: dict[str, Any] = field(default_factory=dict)
    # How often the log is polled for guidance and controls while a tool runs or the run is
    # paused; guidance reaches a sleeping agent within about this long.
    poll_interval_s: float = 0.2
    # Cap on steps below the task's own budget (demos, smoke runs); None keeps the task's.
    max_steps: int | None = None
    # `finish` is refused before this step: weak models otherwise quit at once.
    min_steps: int = 0
    # How the context is kept within the window; None: summarize past the threshold above.
    condenser: Condenser | None = None
    # Sessions outlive a crashed runner by the run's remaining working time plus this long;
    # then their watchdog ends them, so nothing runs forever unowned.
    session_grace_s: float = 600.0


class _Interrupted(Exception):
    """Urgent guidance arrived while the model was thinking: the step restarts with it."""


class WorkClock:
    """Working time: runs only while the agent works (not paused, not while the runner is down)."""

    def __init__(self, used_s: float) -> None:
        self._base = used_s
        self._since: float | None = time.monotonic()

    def used(self) -> float:
        running = time.monotonic() - self._since if self._since is not None else 0.0
        return self._base + running

    def pause(self) -> None:
        self._base = self.used()
        self._since = None

    def resume(self) -> None:
        if self._since is None:
            self._since = time.monotonic()


def _fmt_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Agent:
    """Drives one run until it finishes, fails, times out or is stopped."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        task: Task,
        workspace: Workspace,
        model: ChatModel,
        config: AgentConfig | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.task = task
        self.workspace = workspace
        self.model = model
        self.config = config or AgentConfig()
        self.on_event = on_event
        self.toolbox = ToolBox(extra=[self.think, self.submit, self.finish])
        self.view = ContextView()
        self.clock = WorkClock(0.0)
        self.inbox = Inbox(
            store, run_id, self.record, self.put, self.config.poll_interval_s, on_event
        )
        self.condenser: Condenser = self.config.condenser or SummarizingCondenser(
            self.config.summary_threshold_tokens
        )
        self._deadline_set_at = 0.0

    # -- the log --------------------------------------------------------------------------
    def record(self, events: Sequence[NewEvent], texts: dict[str, str] | None = None) -> None:
        """Append `events` to the run's log and fold them into the view. `texts` may hold
        the JSON of blobs just written (saves reading them back)."""
        for ev in self.store.append(self.run_id, events):
            self.view.apply(ev, texts)
            if self.on_event:
                self.on_event(ev)

    def put(self, message: dict[str, Any], texts: dict[str, str]) -> str:
        """Store a message as a blob; its text goes into `texts` for the next `record`."""
        text = canonical_json(message)
        blob = self.store.put_blob(text)
        texts[blob] = text
        return blob

    def work_s(self) -> float:
        """Working time used so far."""
        return self.clock.used()

    # -- start / resume -------------------------------------------------------------------
    def _start(self) -> None:
        spec = self.task.spec
        texts: dict[str, str] = {}
        task_text = prompt("task").format(
            title=spec.title,
            description=self.task.description.strip(),
            working_time=_fmt_duration(spec.budget.working_time),
            steps=self._max_steps(),
            submissions=spec.budget.submissions,
            network="allowed" if spec.network else "none",
        )
        messages = [
            self.put({"role": "system", "content": prompt("system")}, texts),
            self.put({"role": "user", "content": task_text}, texts),
        ]
        tools = [t.schema() for t in self.toolbox.specs()]
        tools_blob = self.store.put_blob(canonical_json(tools))
        started: schema.RunStarted = {
            "schema": schema.SCHEMA_VERSION,
            "task": spec.id,
            "task_path": str(self.task.path),
            "model": self.model.name,
            # The budget this run has (steps after any cap), as shown to the model.
            "budget": {
                "working_time": spec.budget.working_time,
                "steps": self._max_steps(),
                "submissions": spec.budget.submissions,
            },
            "messages": messages,
            "tools": tools_blob,
        }
        self.record([schema.RUN_STARTED.new(started)], texts)

    async def _resume(self) -> None:
        """Reattach sessions, then settle the tool calls a crash left without a result: reads
        are made again (the step they belong to is not lost), any other call is answered
        "interrupted", since it may or may not have run, and its step does not count."""
        pending = {cid: call.name for cid, call in self.view.actions.pending.items()}
        manager = self.workspace.sessions
        for sid in manager.ids():
            manager.rewind(sid, self.view.actions.session_cursors.get(sid, 0))
        sessions = self.workspace.reattach_sessions()
        rerun = [cid for cid, tool in pending.items() if self._rerunnable(tool)]
        resumed: schema.RunResumed = {
            "sessions": sessions,
            "interrupted": [cid for cid in pending if cid not in rerun],
            "rerun": rerun,
            "paused": self.view.paused,
        }
        self.record([schema.RUN_RESUMED.new(resumed, step=self.view.actions.last_step)])
        step = self.view.actions.last_step
        arguments = self._pending_arguments()
        for call_id, tool in pending.items():
            if call_id in rerun:
                await self._run_call(step, call_id, tool, arguments.get(call_id, ""))
                continue
            content = f"{prompt('interrupted')}\n\n{self._footer(step, interrupted=True)}"
            texts: dict[str, str] = {}
            cut: schema.Observation = {
                "tool_call_id": call_id,
                "tool": tool,
                "message": self._tool_message(call_id, content, texts),
                "error": True,
                "interrupted": True,
                "work_s": self.view.actions.work_s,
            }
            self.record([schema.OBSERVATION.new(cut, step=step)], texts)
        uncorrected = self.view.actions.uncorrected
        if uncorrected is not None:  # killed before the reply without a call was answered
            self._malformed(self.view.actions.last_step, uncorrected)

    def _rerunnable(self, tool: str) -> bool:
        spec = self.toolbox.spec(tool)
        return spec is not None and spec.rerun_on_resume

    def _pending_arguments(self) -> dict[str, str]:
        """Call id -> JSON arguments of the latest act call's tool calls, from its output."""
        actions = self.view.actions.actions
        if not actions:
            return {}
        return call_arguments(json.loads(self.store.get_blob(actions[-1].output)))

    # -- the loop -------------------------------------------------------------------------
    async def run(self) -> str:
        """Run (or resume) until the run ends; returns the final status."""
        self.view = replay(self.store, self.run_id)
        self.inbox.follow(self.view)
        self.clock = WorkClock(self.view.actions.work_s)
        ended = self.view.actions.outcome
        if ended is not None and not resumable(ended["status"]):
            return ended["status"]  # a failed run may be resumed; other ends are final
        self._bound_sessions()
        if self.view.actions.started is None:
            self._start()
        else:
            await self._resume()
            if self.view.actions.finish_summary is not None:  # killed while finishing
                return await self._finish(RunStatus.FINISHED, self.view.actions.finish_summary)
        budget = self.task.spec.budget
        while True:
            self.inbox.sync()
            if self.view.stop_requested:
                return await self._finish(RunStatus.STOPPED, "stopped by an annotator", score=False)
            if self.view.paused:
                await self._wait_while_paused()
                continue
            if self.view.actions.last_step >= self._step_limit():
                steps = self._max_steps()
                return await self._finish(RunStatus.TIMEOUT, f"step budget ({steps}) spent")
            if self.clock.used() >= budget.working_time:
                return await self._finish(RunStatus.TIMEOUT, "working time budget spent")
            outcome = await self._step(self.view.actions.last_step + 1)
            if outcome is not None:
                return outcome

    async def _wait_while_paused(self) -> None:
        def tick() -> None:
            if time.monotonic() - self._deadline_set_at > 30:  # paused time is not spent
                self._bound_sessions()

        self.clock.pause()
        await self.inbox.wait_while_paused(tick)
        self.clock.resume()

    def _bound_sessions(self) -> None:
        """Let sessions live as long as the run could still use them, plus a grace."""
        left = max(0.0, self.task.spec.budget.working_time - self.clock.used())
        self.workspace.sessions.set_deadline(time.time() + left + self.config.session_grace_s)
        self._deadline_set_at = time.monotonic()

    async def _step(self, step: int) -> str | None:
        while True:
            self.inbox.deliver(step)
            await self.condenser.condense(self, step)
            try:
                entries = self.view.entries
                completion = await self.call_model(
                    "act", step, [e.blob for e in entries], self.view.message_texts()
                )
            except _Interrupted:
                continue  # the urgent guidance is delivered and the step made again
            except ModelError as exc:
                return await self._finish(
                    RunStatus.FAILED, f"model call failed: {exc}", score=False
                )
            return await self._act(step, completion)

    async def call_model(
        self, purpose: str, step: int, ids: list[str], messages: list[str]
    ) -> Completion:
        """One recorded model call (`ids` are the blobs of `messages`, already stored). The
        input is logged as a delta against the previous call."""
        texts: dict[str, str] = {}
        schemas = [t.schema() for t in self.toolbox.specs()] if purpose == "act" else None
        started = self.view.actions.started
        head: schema.CallHead = {
            "purpose": purpose,
            "input": encode_input(self.view.last_call_seq, self.view.last_call_ids, ids),
            "tools": started["tools"] if schemas and started else None,
        }

        def on_retry(notice: RetryNotice) -> None:
            retry = notice.to_payload(purpose, self.clock.used())
            self.record([schema.MODEL_RETRY.new(retry, step=step)])

        try:
            completion = await self._complete(messages, schemas, on_retry)
        except ModelError as exc:
            failed: schema.ModelCall = {
                **head,
                "error": str(exc),
                "attempts": exc.attempts,
                "work_s": self.clock.used(),
            }
            self.record([schema.MODEL_CALL.new(failed, step=step)])
            raise
        except _Interrupted:
            cancelled: schema.ModelCall = {
                **head,
                "cancelled": True,
                "cancelled_for": self.inbox.urgent(),
                "work_s": self.clock.used(),
            }
            self.record([schema.MODEL_CALL.new(cancelled, step=step)])
            raise
        # The assistant message is stored once, as the blob the next call's input refers to;
        # the payload keeps only what the fold needs to pair tool results with their calls.
        replied: schema.ModelCall = {
            **head,
            "output": self.put(completion.assistant_message(), texts),
            "calls": [{"id": tc.id, "name": tc.name} for tc in completion.tool_calls],
            "usage": completion.usage,
            "latency_ms": round(completion.latency_ms, 3),
            "model": completion.model or self.model.name,
            "repaired": completion.repaired,
            "parse_error": completion.parse_error,
            "work_s": self.clock.used(),
        }
        self.record([schema.MODEL_CALL.new(replied, step=step)], texts)
        return completion

    def _malformed(self, step: int, parse_error: str) -> None:
        """Answer a reply without a valid tool call with a user turn saying what was wrong."""
        problem = parse_error or prompt("no_tool_call")
        # A model that calls a script of the task as if it were a tool learns how to run it.
        hints = [not_a_tool(name, self.workspace.path) for name in unknown_tools(parse_error)]
        problem = "\n".join([problem, *(h for h in hints if h)])
        texts: dict[str, str] = {}
        message = {"role": "user", "content": f"{problem}\n\n{self._footer(step)}"}
        note: schema.Observation = {
            "tool_call_id": None,
            "tool": None,
            "message": self.put(message, texts),
            "error": True,
            "malformed": True,
            "work_s": self.clock.used(),
        }
        self.record([schema.OBSERVATION.new(note, step=step)], texts)

    async def _complete(
        self,
        messages: list[str],
        schemas: list[dict[str, Any]] | None,
        on_retry: Callable[[RetryNotice], None],
    ) -> Completion:
        """The model call itself. An act call (one offering tools) is cancelled when urgent
        guidance arrives meanwhile; tools are never interrupted, only the model's thinking."""
        call = asyncio.create_task(
            self.model.complete(messages, schemas, self.config.params, on_retry=on_retry)
        )
        if schemas is None:
            return await call
        try:
            while True:
                done, _ = await asyncio.wait({call}, timeout=self.config.poll_interval_s)
                if done:
                    return call.result()
                self.inbox.sync()
                if self.inbox.urgent():
                    raise _Interrupted
        finally:
            if not call.done():  # interrupted, or the log could not be read: no orphan call
                call.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await call

    async def _act(self, step: int, completion: Completion) -> str | None:
        if not completion.tool_calls:
            self._malformed(step, completion.parse_error or "")
            return None
        for call in completion.tool_calls:
            await self._run_call(step, call.id, call.name, call.arguments)
        if self.view.actions.finish_summary is not None:
            return await self._finish(RunStatus.FINISHED, self.view.actions.finish_summary)
        return None

    async def _run_call(self, step: int, call_id: str, name: str, arguments: str) -> None:
        """Run one tool call and record its result."""
        started = time.perf_counter()
        try:
            args = json.loads(arguments or "{}")
        except ValueError as exc:
            args = f"not valid JSON ({exc})"  # the toolbox explains what it expected
        repeated = self._repeated_failure(name, arguments)
        result = repeated or await self._run_tool(name, args)
        output, meta = result.output, result.meta
        digest = None if repeated else call_digest(name, arguments, result.output)
        again = self._same_call_before(name, digest)
        if again is not None and again < step:  # the same call twice in one reply is no cycle
            output += "\n\n" + prompt("repeated_call").format(step=again)
            meta = {**meta, "repeated_call": again}
        texts: dict[str, str] = {}
        content = f"{output}\n\n{self._footer(step)}"
        observation: schema.Observation = {
            "tool_call_id": call_id,
            "tool": name,
            "message": self._tool_message(call_id, content, texts),
            "exit": result.exit,
            "error": result.error,
            "truncated": result.truncated,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "meta": meta,
            "work_s": self.clock.used(),
        }
        if digest is not None:
            observation["call_digest"] = digest
        self.record([schema.OBSERVATION.new(observation, step=step)], texts)

    def _same_call_before(self, name: str, digest: str | None) -> int | None:
        """The earlier step whose call this one repeats with the same result: weak models go
        round in circles (the same few calls in turn, none failing). A poll may rightly
        return the same thing again, and is never noted."""
        if digest is None or name in POLL_TOOLS:
            return None
        return self.view.actions.same_call_before(digest)

    def _repeated_failure(self, name: str, arguments: str) -> ToolResult | None:
        """The answer to a call that repeats, unchanged, a call of the previous step that
        failed: weak models repeat a failing call verbatim for many steps. It is not made
        again, unless its result may change by itself (a poll, or a session still running)."""
        failed = self.view.actions.failed_before(name, arguments)
        if failed is None or name in POLL_TOOLS:
            return None
        if any(s.running for s in self.view.actions.sessions.values()):
            return None
        return ToolResult(
            prompt("repeated_failure").format(step=failed.step),
            error=True,
            meta={"repeated_failure": failed.step},
        )

    def _tool_message(self, call_id: str, content: str, texts: dict[str, str]) -> str:
        """Store a tool result as the tool message the model sees next; returns its blob."""
        return self.put({"role": "tool", "tool_call_id": call_id, "content": content}, texts)

    async def _run_tool(self, name: str, args: Any) -> ToolResult:
        ctx = ToolContext(workspace=self.workspace, wake=self.inbox.wake)
        watcher = asyncio.create_task(self.inbox.watch())
        try:
            return await self.toolbox.call(name, args, ctx)
        finally:
            watcher.cancel()

    # -- the agent's own tools ------------------------------------------------------------
    @declare.tool(rerun_on_resume=True)
    async def think(
        self, ctx: ToolContext, thought: Annotated[str, Field(description="your reasoning")]
    ) -> ToolResult:
        """Write down reasoning, a plan or notes. Changes nothing in the workspace."""
        return ToolResult("Noted.")

    @declare.tool()
    async def finish(
        self, ctx: ToolContext, summary: Annotated[str, Field(description="what you did and found")]
    ) -> ToolResult:
        """End the task. The workspace is scored one last time."""
        if self.view.actions.last_step < self.config.min_steps:
            return ToolResult(
                f"finish is not available before step {self.config.min_steps}: "
                "keep working on the task.",
                error=True,
            )
        return ToolResult(
            "Finishing: the workspace will be scored one last time.",
            meta={"finish": summary or "the agent called finish"},
        )

    @declare.tool()
    async def submit(
        self,
        ctx: ToolContext,
        note: Annotated[str, Field(description="what this submission tries")] = "",
    ) -> ToolResult:
        """Have the current state of /workspace scored by the task's hidden evaluator.
        Submissions are limited; the number left is shown after every tool result."""
        if self.view.submissions() >= self.task.spec.budget.submissions:
            return ToolResult(
                "No submissions left: keep improving and call finish when done.", error=True
            )
        return await self._submit(final=False, note=note)

    async def _submit(self, final: bool, note: str = "") -> ToolResult:
        result = await evaluate(self.task, self.workspace)
        n = self.view.submissions() + (0 if final else 1)
        submission: schema.Submission = {
            "n": n,
            "score": result.score,
            "details": result.details,
            "error": result.error,
            "status": result.status,
            "final": final,
            "note": note,
            "work_s": self.clock.used(),
        }
        self.record([schema.SUBMISSION.new(submission, step=self.view.actions.last_step)])
        if result.status == EVALUATOR_ERROR:
            return ToolResult(
                f"The evaluator failed and gave no score (this says nothing about your work): "
                f"{result.error}",
                error=True,
            )
        if result.score is None:
            return ToolResult(f"The evaluator could not score this: {result.error}", error=True)
        lo, hi = self.task.spec.evaluator.score_range
        details = json.dumps(result.details, ensure_ascii=False)[:2000]
        return ToolResult(f"Score: {result.score:g} (range {lo:g}-{hi:g}). Details: {details}")

    async def _finish(self, status: RunStatus, reason: str, score: bool = True) -> str:
        if score and not self.view.final_scored():
            await self._submit(final=True)
        await self._close_sessions()
        self.inbox.sync()
        finished: schema.RunFinished = {
            "status": status.value,
            "reason": reason,
            "resumable": resumable(status),
            "work_s": self.clock.used(),
        }
        if score:
            self._add_evaluator_error(finished)
        events = self.inbox.cancellations(status)
        events.append(schema.RUN_FINISHED.new(finished, step=self.view.actions.last_step))
        self.record(events)
        # The store refuses guidance after run_finished; close what came in just before it.
        self.inbox.sync()
        self.record(self.inbox.cancellations(status))
        return status.value

    async def _close_sessions(self) -> None:
        """Kill the sessions still running, then record the output every session wrote that
        the agent had not read: ending a run never silently drops output. Reading after the
        kill catches everything written up to the end; a crash in between loses nothing,
        since the resumed run closes again from the cursors the log recorded."""
        await self.workspace.shutdown()
        manager = self.workspace.sessions
        closed: list[schema.ClosedSession] = []
        for status in manager.statuses():
            output = manager.read(status.id)
            if not output.new_bytes:
                continue
            closed.append(
                {
                    "id": status.id,
                    "output": self.store.put_blob(output.text),
                    "new_bytes": output.new_bytes,
                    "cursor": output.cursor,
                    "exit_code": status.exit_code,
                    "killed": status.killed,
                }
            )
        if closed:
            self.record([schema.SESSIONS_CLOSED.new({"sessions": closed})])

    def _add_evaluator_error(self, finished: schema.RunFinished) -> None:
        """When the final evaluation failed, the run's outcome says so (the fold holds the
        log's submissions, so a run resumed after its final submission says it too)."""
        finals = [s for s in self.view.actions.submissions if s["final"]]
        if not finals or finals[-1]["status"] != EVALUATOR_ERROR:
            return
        error = str(finals[-1]["error"])
        finished["evaluator_error"] = error
        finished["reason"] += f"; the evaluator failed, so the run has no final score: {error}"

    def _max_steps(self) -> int:
        steps = self.task.spec.budget.steps
        return min(steps, self.config.max_steps) if self.config.max_steps else steps

    def _step_limit(self) -> int:
        """The last step the run may take: steps whose calls a crash cut are not counted."""
        return self._max_steps() + len(self.view.actions.interrupted_steps)

    def _footer(self, step: int, interrupted: bool = False) -> str:
        """The budget line after a result; `interrupted` for the result that marks `step` as
        cut by a crash (the limit it shows already gives that step back)."""
        budget = self.task.spec.budget
        given_back = interrupted and step not in self.view.actions.interrupted_steps
        return prompt("footer").format(
            step=step,
            max_steps=self._step_limit() + given_back,
            time_left=_fmt_duration(budget.working_time - self.clock.used()),
            submissions_left=budget.submissions - self.view.submissions(),
        )
