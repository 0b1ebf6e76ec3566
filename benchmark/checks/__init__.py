"""Checks of a run beyond the metrics: known answers and paper claims (with the h-space properties they
measure), and the CI regression baseline."""
