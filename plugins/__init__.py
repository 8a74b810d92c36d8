"""gancore's built-in plugins, each found through the ``gancore`` entry-point group like any other."""
