"""Inside CNNs course library."""
