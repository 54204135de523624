"""Metrics and comparisons for rate–distortion evaluation."""
