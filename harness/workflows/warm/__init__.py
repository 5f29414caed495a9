"""The warm guest: a guest kept booted in the background (server.py), `highmem up/status/down`
and `highmem run` on it (client.py), `highmem watch` (watch.py), the record and the channel.
"""
