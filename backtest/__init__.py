"""The backtest driver: the whole organism in one process on a simulated clock."""
