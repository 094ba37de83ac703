"""GPU health through NVML: availability, identity, driver, memory errors, clocks, NVLink, fabric.

Every check here reads `inv.gpu`, the record the NVML collector returned from its child process;
none of them touches NVML. The runner skips them when the node has no GPU, and when NVML did not
answer (hung, crashed, failed to initialise) all but `gpu.nvml_available` skip and point at it.

One module per concern: `availability` (NVML answers, devices, processes), `identity` (driver,
VBIOS, persistence, MIG), `memory` (ECC, row remapping), `thermal` (clocks, temperature, power),
`links` (NVLink, PCIe, fabric) and `active` (the tier 2+ tests measured before the checks).
"""
