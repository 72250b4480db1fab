"""Torch model code (generator, encoder, face recogniser, CLIP teacher) that training, conversion and export build on."""
