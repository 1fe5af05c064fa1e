"""Realistic run logs written straight into a store, shaped as the agent writes them (blobs
for messages, delta-encoded model inputs), for the console tests and benchmarks."""

from __future__ import annotations

import json
from typing import Any

from apollo.log import schema
from apollo.log.calls import encode_input
from apollo.log.events import Event, NewEvent, canonical_json
from apollo.log.outcome import resumable
from apollo.log.store import Store

BUDGET: schema.Budget = {"working_time": 600.0, "steps": 50, "submissions": 2}


class FakeRun:
    """Writes one run's log step by step, as the agent would."""

    def __init__(self, store: Store, run_id: str, work_per_step_s: float = 2.0) -> None:
        self.store = store
        self.run_id = run_id
        self.work_per_step_s = work_per_step_s
        self.step = 0
        self.work_s = 0.0
        self.ids: list[str] = []
        self.prev_call: int | None = None
        self.prev_ids: list[str] = []

    def _blob(self, message: dict[str, Any]) -> str:
        blob = self.store.put_blob(canonical_json(message))
        self.ids.append(blob)
        return blob

    def append(self, *events: NewEvent) -> list[Event]:
        return self.store.append(self.run_id, list(events))

    def start(self, budget: schema.Budget | None = None) -> list[Event]:
        messages = [
            self._blob({"role": "system", "content": "You are an agent."}),
            self._blob({"role": "user", "content": "Do the task."}),
        ]
        started: schema.RunStarted = {
            "schema": schema.SCHEMA_VERSION,
            "task": "fake-task",
            "task_path": "tasks/fake-task",
            "model": "scripted",
            "budget": budget or BUDGET,
            "messages": messages,
            "tools": self.store.put_blob("[]"),
        }
        return self.append(schema.RUN_STARTED.new(started))

    def act(
        self,
        tool: str,
        args: dict[str, Any] | None = None,
        *,
        result: str = "done",
        error: bool = False,
        meta: dict[str, Any] | None = None,
        thought: str = "next I will act",
        usage: tuple[int, int] = (120, 30),
    ) -> list[Event]:
        """One step: a model call that calls `tool`, and the tool's observation."""
        self.step += 1
        self.work_s += self.work_per_step_s
        call_id = f"call-{self.step}"
        message = {
            "role": "assistant",
            "content": thought,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": tool, "arguments": json.dumps(args or {})},
                }
            ],
        }
        encoded = encode_input(self.prev_call, self.prev_ids, list(self.ids))
        self.prev_ids = list(self.ids)
        output = self._blob(message)
        call = schema.MODEL_CALL.new(
            {
                "purpose": "act",
                "input": encoded,
                "tools": None,
                "output": output,
                "calls": [{"id": call_id, "name": tool}],
                "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]},
                "latency_ms": 5.0,
                "work_s": self.work_s,
            },
            step=self.step,
        )
        [call_ev] = self.append(call)
        self.prev_call = call_ev.seq
        obs = schema.OBSERVATION.new(
            {
                "tool_call_id": call_id,
                "tool": tool,
                "message": self._blob({"role": "tool", "tool_call_id": call_id, "content": result}),
                "exit": 1 if error else 0,
                "error": error,
                "truncated": False,
                "duration_ms": 3.0,
                "meta": meta or {},
                "work_s": self.work_s,
            },
            step=self.step,
        )
        return [call_ev, *self.append(obs)]

    def deliver(self, guidance_id: str) -> list[Event]:
        """Deliver queued guidance at the next step boundary, as the agent does."""
        turn = self._blob({"role": "user", "content": f"<real_user>{guidance_id}</real_user>"})
        delivered: schema.GuidanceDelivered = {
            "guidance_id": guidance_id,
            "step": self.step + 1,
            "message": turn,
        }
        return self.append(schema.GUIDANCE_DELIVERED.new(delivered, step=self.step + 1))

    def cancel(self, guidance_id: str) -> list[Event]:
        cancelled: schema.GuidanceCancelled = {
            "guidance_id": guidance_id,
            "reason": "the run ended (stopped) first",
        }
        return self.append(schema.GUIDANCE_CANCELLED.new(cancelled, step=self.step))

    def submit(self, score: float, final: bool = False) -> list[Event]:
        submission: schema.Submission = {
            "n": 1,
            "score": score,
            "details": {},
            "error": None,
            "status": "scored",
            "final": final,
            "note": "",
            "work_s": self.work_s,
        }
        return self.append(schema.SUBMISSION.new(submission, step=self.step))

    def finish(self, status: str = "finished") -> list[Event]:
        finished: schema.RunFinished = {
            "status": status,
            "reason": "done",
            "resumable": resumable(status),
            "work_s": self.work_s,
        }
        return self.append(schema.RUN_FINISHED.new(finished, step=self.step))
