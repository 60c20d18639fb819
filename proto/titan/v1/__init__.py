"""titan.v1: generated wire contracts (see proto/titan/v1/*.proto; regenerate with proto/generate.py)."""
