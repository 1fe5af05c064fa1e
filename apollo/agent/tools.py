"""The tools the agent handles itself (not the environment's): think, submit, finish."""

from __future__ import annotations

from apollo.env.tools.base import ToolSpec

THINK = ToolSpec(
    "think",
    "Write down reasoning, a plan or notes. Changes nothing in the workspace.",
    {
        "type": "object",
        "properties": {"thought": {"type": "string", "description": "your reasoning"}},
        "required": ["thought"],
    },
    rerun_on_resume=True,
)

SUBMIT = ToolSpec(
    "submit",
    "Have the current state of /workspace scored by the task's hidden evaluator. "
    "Submissions are limited; the number left is shown after every tool result.",
    {
        "type": "object",
        "properties": {"note": {"type": "string", "description": "what this submission tries"}},
        "required": [],
    },
)

FINISH = ToolSpec(
    "finish",
    "End the task. The workspace is scored one last time.",
    {
        "type": "object",
        "properties": {"summary": {"type": "string", "description": "what you did and found"}},
        "required": ["summary"],
    },
)
