"""The benchmark scripts are run as scripts, not installed: import them from their folders.

The repository root makes ``benchmarks.common`` and ``benchmarks.gateway`` importable; the
inference folder its scripts' short module names. Appended, not prepended, so that no short
name shadows a package.
"""

from __future__ import annotations

import sys
from pathlib import Path

_BENCHMARKS = Path(__file__).resolve().parents[1]
sys.path.append(str(_BENCHMARKS.parent))
sys.path.append(str(_BENCHMARKS / "inference"))
