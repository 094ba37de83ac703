"""Example site checks for preflight (see checks/README.md in the preflight repository)."""
