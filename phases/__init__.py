"""titan.phases: the phase runtime and the strategies (scavenger, hunter, sentinel, ai-quant)."""
