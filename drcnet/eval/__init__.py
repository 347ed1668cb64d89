"""Measuring: evaluation against classical baselines, the safety gate, and timing (latency tables, op shares,
engine and training-step speed, the NAFNet reference)."""
