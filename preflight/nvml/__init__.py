"""NVML access: a collector that runs in a child process with a deadline, and a fake NVML.

Only `collector` imports `pynvml`, and only the child process (`python -m preflight.nvml.child`)
imports `collector`: the process that runs the checks never loads NVML, so a call that blocks in
the driver can never stall the run. `probe` starts the child and enforces the deadline; `schema`
describes the record the child returns, which is also the format of a profile's `nvml` section.
"""
