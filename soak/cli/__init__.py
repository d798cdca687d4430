"""The command line: `soak run`, `report`, `check`, `history`, `demo-model`, `image`."""
