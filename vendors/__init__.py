"""In-tree vendors: one folder each, exposing `VENDOR` (see benchmarks/interfaces.py)."""
