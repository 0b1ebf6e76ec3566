"""`run_all.py bench`: time and count the work of a suite on a device, and project the suite's wall time.

It builds the suite's real architectures (random weights where the real ones would have to be fetched, the shipped
models otherwise), times each unit of work (an inversion step, a training image-step in the project's loop and in
the authors' loop structure, an attribute-batched training step, an editing step, each metric's back-end batch)
after a warm-up, counts its FLOPs with `torch.utils.flop_counter.FlopCounterMode`, and multiplies by the suite's
own unit counts (images, steps, attributes, Δh scales, property generations). Layer: above `benchmark.plan`, whose
loaders and plugins it uses; below the CLI.
"""
