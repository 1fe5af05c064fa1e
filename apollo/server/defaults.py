"""Defaults of `apollo serve` and `apollo demo`, importable without the web stack."""

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8321
# The demo: the long-job task shows sessions, polling and the simulated annotator at work;
# the data-filtering task runs beside it, so the dashboard has more than one run to watch.
DEMO_TASKS = ("patient-training", "filter-noisy-labels")
DEMO_STEPS = 16
DEMO_SUMMARY_THRESHOLD = 5000  # the embedded model's window is small: summarize early
# Run limits of `apollo serve` (docs/api.md "Run limits").
MAX_RUNNING = 8
MAX_RUNNING_PER_ANNOTATOR = 4
MAX_QUEUED_PER_ANNOTATOR = 20
# Failed logins allowed per client address and per name within the window.
LOGIN_FAILURES = 10
LOGIN_WINDOW_S = 300.0
