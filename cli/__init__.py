"""titan.cli: the `titan` command and the local runners."""
