"""Configuration: the settings of a run, declared once for flags, soak.toml and run.toml."""
