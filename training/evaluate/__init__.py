"""Measurements and probes behind the numbers in docs/ (their JSON results are kept in docs/results/)."""
