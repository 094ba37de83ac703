"""preflight: find the GPU node that will ruin a distributed training run, before the run."""

__version__ = "0.1.0"
