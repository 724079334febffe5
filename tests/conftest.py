"""Test configuration: groupcov first (quiet PyTensor), fast-compiling unit graphs."""

import os
import tempfile

os.environ.setdefault("GROUPCOV_CACHE_DIR", os.path.join(tempfile.gettempdir(), "groupcov-jax"))

# isort: off
import groupcov  # noqa: F401  (sets PyTensor's flags, so it must come before PyTensor)
import pytensor

# isort: on

# Unit tests evaluate many small graphs once each: skip C compilation.
pytensor.config.mode = "FAST_COMPILE"
