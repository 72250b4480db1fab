"""Training runs (inversion encoder, preview heads, CLIP student, mapper and strength predictor)."""
