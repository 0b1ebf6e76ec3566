"""Executing a plan: the content-addressed stage cache, the runner, the stages (invert, train, edit, measure)
and the pipeline that assembles a run folder."""
