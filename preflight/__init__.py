"""preflight: find the GPU node that will ruin a distributed training run, before the run."""

import gc

__version__ = "0.1.0"

# A `run --profile` keeps ~70,000 tracked objects until it ends (modules, classes, the profile's
# entries, the inventory) and makes next to no cyclic garbage: at the default first threshold
# (700) the collector went over them in ~110 passes (2% of the run's instructions, more of its
# time: each pass misses the cache); at 50,000 it runs once or never. Set here, before the CLI
# imports typer, so that the imports gain too. Cycles are still collected.
gc.set_threshold(50_000)
