"""Closed-form fits on generated samples (directions, corrections, skin tone) and per-photo latent refinement."""
