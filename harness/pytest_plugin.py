"""The pytest plugin's old module name. pyproject.toml registers harness/frontends/
pytest_plugin.py (entry point `pytest11: highmem`); a .venv installed before the move still
names this module until `make deps` reinstalls it, so this loads the plugin from here."""

pytest_plugins = ["harness.frontends.pytest_plugin"]
