"""Measurements and probes behind the numbers in docs/ (their JSON results are kept in docs/results/)."""
import engine  # noqa: F401  (first: the app's thread settings, e.g. one BLAS thread, before numpy is imported)
