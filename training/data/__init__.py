"""Training and evaluation inputs: generated samples, their alignment and labels, the shared real face sets."""
