"""The method comparison: a grid of (task, backbone, method, seed) cells, aggregated with error bars."""
