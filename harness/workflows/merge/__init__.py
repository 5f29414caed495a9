"""`highmem merge`: the shards' reports into one (model.py pure, command.py).
"""
