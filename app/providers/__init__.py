"""Thin adapters over one provider SDK each; services see small typed results and UpstreamError."""
