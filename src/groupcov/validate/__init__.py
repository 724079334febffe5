"""Statistical validation of groupcov: calibration, recovery and real data.

Run from the command line (results and figures go to ``--out``, default
``validation``)::

    python -m groupcov.validate sbc        # simulation-based calibration
    python -m groupcov.validate pooling    # does partial pooling pay? (vs scikit-learn)
    python -m groupcov.validate realdata   # iris and wine: every pooling mode

``--quick`` runs a reduced version of each.
"""

from groupcov.validate.sbc import CONFIGS, SBCConfig, SBCResult, SBCSettings, run_sbc

__all__ = ["CONFIGS", "SBCConfig", "SBCResult", "SBCSettings", "run_sbc"]
