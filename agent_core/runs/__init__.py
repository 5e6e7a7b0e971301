"""The life of a run: who works on it, the plan, the tool loop, control and limits."""
