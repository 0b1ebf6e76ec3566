"""Dress rehearsal of the real suites: random weights in each pinned file's release format, a CelebA-HQ stand-in, a
local mirror and a generated manifest tree (see `benchmark.rehearsal.api`)."""
