"""`highmem coverage`: the suite on a gcov kernel and its line/branch coverage (model.py pure,
data.py I/O, command.py).
"""
