"""The swap driver: stage versions, wait for the server to swap, wait for memory to settle."""
