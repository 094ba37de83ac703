"""Built-in checks, one module per area; each is a decorated function of (inventory, params)."""
