"""Inversion: a face -> MobileStyleGAN's W+ (23 x 512), for the live loop and for stills.

    inverter.py      the Inverter and its InversionOptions: everything from the aligned crop to the corrected W+,
                     in the live order and the still order (read its docstring first)
    encoder.py       the encoder network (onnxruntime) with the corrections fitted for it; the stills' closed loop
                     on the rendered reconstruction
    corrections/     linear maps fitted on generated faces: what the landmarks (landmark.py) and a face recogniser
                     (identity.py) say the one pass missed, and the identity feedback on a render (feedback.py);
                     linear.py is their common reduced-rank ridge model
    skin_tone.py     the skin's CIELAB predicted from W+ and matched to the face's
    refine.py        the quality mode for stills (latent optimisation over onnxruntime)
    calibration.py   the personal calibration (keyframes refined once, their mean offset added to every one pass)
                     and its live schedule
    targets.py       morph targets: photos inverted once and cached by content
"""
