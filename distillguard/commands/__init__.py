"""One module a subcommand: each defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.

``distillguard.cli`` discovers the modules in this package, so adding a command
means adding a module here and nothing else.
"""
