"""The original study, reproduced: its experiment plan and presets (plan.py), the runner (runner.py), and its
Table 1 (table1.py). Kept free of imports so that the report can read Table 1 without running the study."""
