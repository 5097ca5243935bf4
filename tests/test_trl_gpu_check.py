"""The prepared GPU check exits at once, with a clear message, where there is no CUDA device."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"


def test_gpu_check_without_cuda_exits_at_once(tmp_path):
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
        timeout=120,
    )
    assert done.returncode == 1
    assert "no CUDA device" in done.stderr and "not part of CI" in done.stderr
    assert not (tmp_path / "run").exists()  # nothing built, nothing written
    assert time.perf_counter() - started < 90
