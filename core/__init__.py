"""titan.core: the shared core every part builds on — wire helpers, subject catalog, settings,
money, clock, the ledger and the event bus. It imports nothing from operator/phases/execution."""
