"""Tuning table for the sparse-FP8 GEMM dispatcher (table.py) and the script that writes it (tune.py)."""
