"""`highmem matrix`: the suite on every cell of a kernel matrix (model.py, report.py pure,
command.py).
"""
