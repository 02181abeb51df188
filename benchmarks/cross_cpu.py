"""Do the tests' stored expected numbers hold on other x86-64 CPUs? Run pytest under emulated instruction sets.

CI runs on whichever machine a session gets, and the numerical libraries choose their kernels at run time from the
CPU they find: OpenBLAS (numpy, scipy) its core type, PyTorch's ATen its vector width, oneDNN (convolutions) its
ISA, MKL its code path, numpy its SIMD loops, glibc its libm variants. A stored slice computed on an AVX-512
machine can differ on an AVX2 one. Each library has a documented switch that caps what it uses, so this machine
can stand in for older ones:

- ``x86-64-v3``: AVX2/FMA, no AVX-512 (for example an AMD EPYC Zen 2/3);
- ``x86-64-v2``: SSE4.2 only, the oldest kernels each library ships;
- ``1-thread``: one thread everywhere (a machine with another core count splits reductions differently).

Usage::

    python benchmarks/cross_cpu.py                      # the tests marked stored_numbers, all emulations
    python benchmarks/cross_cpu.py -- tests/test_x.py   # any pytest arguments after --
    python benchmarks/cross_cpu.py --emulations x86-64-v3

It prints one line per emulation (passed/failed, seconds) and, for each failure, pytest's assertion summary (the
largest absolute and relative differences). Exit status 1 when any emulation fails a test that passes natively.
The switches only lower what the machine has (an AVX2 machine runs ``x86-64-v3`` natively); they cannot emulate
a newer CPU, nor compiler differences of another build of the same libraries.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: glibc's hardware capabilities that select the libm variants (``GLIBC_TUNABLES``, glibc manual "Hardware Capability
#: Tunables"); a minus switches one off.
_GLIBC_AVX512 = "-AVX512F_Usable,-AVX512DQ_Usable,-AVX512BW_Usable,-AVX512VL_Usable,-AVX512CD_Usable"
_GLIBC_AVX2 = "-AVX2_Usable,-FMA_Usable,-FMA4_Usable,-AVX_Usable"

#: Environment switches per emulated CPU. Sources: OpenBLAS README ("OPENBLAS_CORETYPE"), PyTorch docs
#: ("ATEN_CPU_CAPABILITY"), oneDNN docs ("ONEDNN_MAX_CPU_ISA"), Intel MKL developer guide
#: ("MKL_ENABLE_INSTRUCTIONS"), NumPy docs ("NPY_DISABLE_CPU_FEATURES", runtime dispatch targets).
EMULATIONS: dict[str, dict[str, str]] = {
    "x86-64-v3": {
        "OPENBLAS_CORETYPE": "Haswell",
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_SKX AVX512_ICL AVX512_SPR",
        "GLIBC_TUNABLES": f"glibc.cpu.hwcaps={_GLIBC_AVX512}",
    },
    "x86-64-v2": {
        "OPENBLAS_CORETYPE": "Nehalem",
        "ATEN_CPU_CAPABILITY": "default",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
        "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
        "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_SKX AVX512_ICL AVX512_SPR",
        "GLIBC_TUNABLES": f"glibc.cpu.hwcaps={_GLIBC_AVX512},{_GLIBC_AVX2}",
    },
    "1-thread": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
}

_RESULT = re.compile(r"^(PASSED|FAILED|ERROR) (\S+)", re.M)
_DETAIL = re.compile(r"(Max absolute difference[^\n]*|Max relative difference[^\n]*|Greatest [^\n]*)")


def run_pytest(pytest_args: list[str], env_extra: dict[str, str], timeout: float) -> dict:
    """Run pytest in a subprocess with ``env_extra`` on top of this environment.

    Returns ``{"outcomes": {test id: "PASSED"|"FAILED"|"ERROR"}, "details": {test id: [difference lines]},
    "seconds": float, "returncode": int}``. Raises ``subprocess.TimeoutExpired`` after ``timeout`` seconds.
    """
    env = {**os.environ, **env_extra}
    cmd = [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "--tb=short", *pytest_args]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    out = r.stdout + r.stderr
    outcomes = {m.group(2): m.group(1) for m in _RESULT.finditer(out)}
    details: dict[str, list[str]] = {}
    # pytest --tb=short prints "____ test_id ____" then the traceback; attach the difference lines to the test
    sections = re.split(r"\n_{3,} (\S+?) _{3,}\n", out)
    for name, body in zip(sections[1::2], sections[2::2]):
        details[name] = _DETAIL.findall(body)[:2]
    return {"outcomes": outcomes, "details": details, "seconds": time.perf_counter() - t0, "returncode": r.returncode}


def compare(pytest_args: list[str], emulations: list[str], timeout: float = 1800, native: bool = True) -> int:
    """Run ``pytest_args`` natively and under each emulation; print the comparison; return the exit status (1 when
    an emulation fails a test that passes natively, or runs no test). With ``native=False`` the native run is
    skipped and every test is expected to pass (what the test suite does, having run them natively already)."""
    status = 0
    if native:
        base = run_pytest(pytest_args, {}, timeout)
        n_pass = sum(v == "PASSED" for v in base["outcomes"].values())
        n_fail = len(base["outcomes"]) - n_pass
        print(f"native        {n_pass:4d} passed, {n_fail:3d} failed  ({base['seconds']:.0f} s)")
        if not base["outcomes"]:
            print("no tests ran natively; pytest arguments:", pytest_args)
            return 1
    for name in emulations:
        res = run_pytest(pytest_args, EMULATIONS[name], timeout)
        expected = base["outcomes"] if native else {t: "PASSED" for t in res["outcomes"]}
        regressed = sorted(t for t, v in res["outcomes"].items() if v != "PASSED" and expected.get(t) == "PASSED")
        missing = sorted(set(expected) - set(res["outcomes"])) or ([] if res["outcomes"] else ["(no test ran)"])
        n_pass = sum(v == "PASSED" for v in res["outcomes"].values())
        print(
            f"{name:13s} {n_pass:4d} passed, {len(res['outcomes']) - n_pass:3d} failed  ({res['seconds']:.0f} s)"
            f"  -> {'OK' if not regressed and not missing else 'DIFFERS'}"
        )
        for t in regressed:
            short = t.split("::", 1)[-1]
            detail = next((v for k, v in res["details"].items() if k in t or short.endswith(k)), [])
            print(f"    {t}: {'; '.join(detail) or 'failed'}")
        for t in missing:
            print(f"    {t}: did not run")
        status |= bool(regressed or missing)
    return status


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pytest_args = argv[argv.index("--") + 1 :] if "--" in argv else ["-m", "stored_numbers"]
    own = argv[: argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--emulations", nargs="+", default=list(EMULATIONS), choices=list(EMULATIONS))
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per pytest run")
    ap.add_argument("--no-native", action="store_true", help="skip the native run; expect every test to pass")
    args = ap.parse_args(own)
    return compare(pytest_args, args.emulations, args.timeout, native=not args.no_native)


if __name__ == "__main__":
    raise SystemExit(main())
