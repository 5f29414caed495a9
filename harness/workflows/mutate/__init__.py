"""`highmem mutate`: each patch applied to a git copy of the kernel tree, the suite on it
(model.py pure, command.py).
"""
