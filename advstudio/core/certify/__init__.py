"""Certified robustness: lower bounds on how robust a model is (attacks give the upper bounds).

- :mod:`.smoothing`: randomised smoothing, CERTIFY / PREDICT (Cohen et al. 2019), L2.
- :mod:`.smooth_attack`: PGD on the smoothed classifier (Salman et al. 2019), L2.
- :mod:`.bounds`: the smallest smooth-PGD flip per image and empirical accuracy (upper bounds
  beside smoothing's certified radius).
- :mod:`.ibp`: interval bound propagation, verified L-inf accuracy and its training loss
  (Gowal et al. 2018).
- :mod:`.trades`: the TRADES training loss (Zhang et al. 2019).
- :mod:`.job`: the headless jobs ``run_smoothing`` and ``run_ibp``.
"""
