"""Active GPU tests: work run on the GPUs in child processes, judged by the gpu.* checks.

`preflight run --level 2` (or `--only` naming one) measures before the checks run, the way
`--bench` does for bench.allreduce: the run's `active-tests` collector calls
`collect.collect_planned`, which starts one `worker` process per GPU (all GPUs at once, each
killed at its deadline with its process group) and stores the plain JSON records in the run's
Inventory; the checks only judge them. The
parent never imports torch.
"""
