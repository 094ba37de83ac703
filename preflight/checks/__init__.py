"""Built-in checks, one module per area; each check is a decorated function of (inventory, params)."""
