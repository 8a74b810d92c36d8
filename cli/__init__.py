"""The ``gan`` command (installed as ``gancore_cli``): parses arguments and calls the core."""
