"""Corrections of the encoder's one pass, each a linear map (linear.py) from a feature the encoder does not see
well: the face's landmarks (landmark.py), a face recogniser's embedding (identity.py) and the recogniser's view of
the reconstruction (feedback.py)."""
