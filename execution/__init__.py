"""titan.execution: the data plane — gRPC signal stream, risk gate, order state machine, venues."""
