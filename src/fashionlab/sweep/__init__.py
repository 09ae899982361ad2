"""Hyper-parameter sweeps on Optuna's storage (search.py) and their HTML page (report.py)."""
