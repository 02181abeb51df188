"""The stored expected numbers hold on another x86-64 CPU: the tests marked ``stored_numbers`` pass with every
numerical library capped at AVX2 (no AVX-512), the kind of machine on which a stored slice once failed by 10 %.

``benchmarks/cross_cpu.py`` does the emulation (OpenBLAS core type, ATen capability, oneDNN ISA, MKL path, numpy's
SIMD dispatch, glibc's libm variants); on an AVX2 machine the emulation changes nothing and the check is the suite
itself. The benchmark also runs SSE4.2-only and one-thread variants.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import cross_cpu  # noqa: E402


def test_the_harness_reports_a_test_that_fails_only_under_emulation(tmp_path, capsys):
    (tmp_path / "test_probe.py").write_text(
        "import os\n\ndef test_native_only():\n    assert 'ATEN_CPU_CAPABILITY' not in os.environ\n\n"
        "def test_anywhere():\n    assert True\n"
    )
    args = [str(tmp_path / "test_probe.py"), "--rootdir", str(tmp_path)]
    assert cross_cpu.compare(args, ["x86-64-v3"], timeout=120) == 1
    out = capsys.readouterr().out
    assert "native           2 passed,   0 failed" in out and "DIFFERS" in out and "test_native_only" in out
    assert "test_anywhere" not in out.split("DIFFERS", 1)[1]


def test_the_switches_reach_the_blas_kernels():
    # ECGSYN's ODE steps are BLAS-sensitive: SSE4.2 and AVX2 kernels give another template on any AVX2 machine
    code = (
        "import neurokit2 as nk, sys; sys.stdout.write(nk.ecg_simulate(duration=10, sampling_rate=500, "
        "heart_rate=70, random_state=1, noise=0.01).tobytes().hex())"
    )
    outs = [
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, **cross_cpu.EMULATIONS[name]},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        for name in ("x86-64-v2", "x86-64-v3")
    ]
    assert outs[0] and outs[0] != outs[1]


@pytest.mark.timeout(900)
def test_stored_numbers_hold_with_avx2_kernels(capsys):
    status = cross_cpu.compare(["-m", "stored_numbers"], ["x86-64-v3"], timeout=800, native=False)
    out = capsys.readouterr().out
    assert status == 0, out
    assert "passed" in out
