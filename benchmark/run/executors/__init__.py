"""Executors: a run's content-addressed units as jobs, inline (the default), on local workers or on SLURM.

- `graph`: the units as a dependency graph, learnt by replaying the pipeline; the replay that computes units;
- `lazy`: entries read from the cache on first use, and `Pending` (a unit not computed yet);
- `job`: what a worker runs; `probe`: the first job, which checks that workers see the cache root;
- `backends`: submitit's LocalExecutor and SLURM executor, and the checks before anything is submitted;
- `driver`: the loop that submits units in dependency order, resubmits lost ones and cancels on Ctrl-C;
- `scale`: `scale_out`, which fills the cache with every unit of a plan; `run_plan` then writes the run folder;
- `config`: the executor settings (flags and `--executor-config FILE`).

The package is imported only when a run asks for an executor other than `inline`; its modules import little, so a
worker's probe starts fast. docs/scale-out.md says how to use it.
"""
