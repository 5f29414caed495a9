"""`highmem bisect`: git bisect run with the harness as the test (model.py pure, command.py,
step.py: one step).
"""
