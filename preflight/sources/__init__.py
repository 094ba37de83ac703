"""Sources: narrow doors to one node, each with a live and a profile implementation.

`Host` (preflight.host) composes them: files under a root, the kernel log, resource limits and
filesystem sizes, the environment and NVML. A profile replaces a source, never a branch inside
one; `preflight.sources.recording` wraps any source to keep what was read, for `snapshot`.
"""
