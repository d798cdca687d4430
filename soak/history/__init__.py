"""The run history: every analysed run recorded, trends and references for the gate."""
