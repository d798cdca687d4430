"""Reports: the HTML report and the terminal table."""
