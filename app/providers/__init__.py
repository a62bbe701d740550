"""Thin adapters over one SDK each: base URLs, timeouts, retries and SDK errors stay inside them."""
