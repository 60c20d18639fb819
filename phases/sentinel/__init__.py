"""Phase 3, the Sentinel: market-neutral spot/perp basis and funding carry."""
