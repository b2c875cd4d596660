"""Tests that run the trained Wan2.1-tiny files skip, saying why, in a checkout that does not hold them yet."""
import pytest

from wan21_core.embedded import builtin_available

needs_builtin = pytest.mark.skipif(
    not builtin_available(),
    reason="this checkout has no trained Wan2.1-tiny weights yet (python -m wan21_core.embedded train DIR)")
