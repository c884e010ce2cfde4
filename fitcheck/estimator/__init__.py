"""The estimator: pure functions from (model, settings, device) to memory, verdict and speed. No I/O."""
