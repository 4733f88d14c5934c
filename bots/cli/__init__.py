"""The `teambridge` command line, one module per command group.

Each module has `register(sub, common)`: it adds its subparser (with `common` as a parent, for `--config`) and
sets `handler=` (and optionally `needs_config=False`, `log_level=`) with `set_defaults`. bots/app.py lists the
modules; adding a command group is a new module plus one line there.
"""
