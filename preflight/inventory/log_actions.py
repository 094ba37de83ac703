"""Action classes for kernel log events (Xid, SXid and the rest): what a node that logged one needs.

One vocabulary for every catalogue of kernel log events, so a check judges them alike:
drain classes (reset the GPU, reboot, drain for service) take the node out of the job pool,
the others leave it in.
"""

from __future__ import annotations

IGNORE = "ignore"
RESTART_APP = "restart_app"
INVESTIGATE = "investigate"
RESET_GPU = "reset_gpu"
REBOOT = "reboot"
DRAIN_RMA = "drain_rma"
UNKNOWN = "unknown"

DRAIN = frozenset({RESET_GPU, REBOOT, DRAIN_RMA})
"""Action classes that take the GPU (and so the node) out of service until acted on."""

ACTION_TEXT = {
    IGNORE: "informational",
    RESTART_APP: "restart the application; the GPU stays usable",
    INVESTIGATE: "look into it; the node stays usable",
    RESET_GPU: "reset the GPU (or reboot the node)",
    REBOOT: "reboot the node",
    DRAIN_RMA: "drain the node for service (reseat or replace the part, or contact support)",
    UNKNOWN: "not in the catalogue this tool knows: look it up in NVIDIA's Xid catalogue",
}

ACTIONS = frozenset(ACTION_TEXT)
