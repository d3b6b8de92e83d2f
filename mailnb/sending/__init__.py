"""Stages 3 to 5: the plan (pure), the preflight (once), the run (claim, gate, send, record) and
the summary, behind one synchronous and one async front."""
