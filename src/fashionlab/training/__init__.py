"""Training: loop.py (the loop), optim.py, precision.py, checkpoint.py, early_stopping.py."""
