"""Business rules, one module per domain, as plain functions over a session and plain values."""
