"""The foundation every layer uses: errors and exit codes, signals, /proc, what a run owns."""
