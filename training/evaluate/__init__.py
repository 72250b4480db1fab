"""Measurements and probes behind the numbers in docs/ (each writes its JSON under docs/results/)."""
