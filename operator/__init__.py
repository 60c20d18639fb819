"""titan.operator: the Brain — a pure allocation/risk core and its kopf and local drivers."""
