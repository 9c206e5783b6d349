"""Built-in waste rules, one per module; every module here is imported and registers itself."""
