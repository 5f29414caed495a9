"""The workflows built on run(): one folder each, holding its pure model, its I/O and its
command (the warm guest, bisect, mutate, matrix, merge, coverage); gitcopy.py is shared by
bisect and mutate.
"""
