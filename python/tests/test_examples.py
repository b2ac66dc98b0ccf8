"""The seed's four examples run to completion against the in-process server."""

import os
import pathlib
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def test_the_four_examples_run_to_completion():
    env = {k: v for k, v in os.environ.items() if k not in ("ARGUS_URL", "ARGUS_API_KEY")}
    runs = {
        "quickstart": ["--seconds", "1"],
        "custom_processor": ["--seconds", "1"],
        "robust_client": ["--seconds", "6"],
        "multi_client": ["--seconds", "1.5", "--interval", "0.5"],
    }
    processes = {
        name: subprocess.Popen(
            [sys.executable, str(EXAMPLES / f"{name}.py"), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for name, args in runs.items()
    }
    outputs = {}
    for name, process in processes.items():
        out, _ = process.communicate(timeout=60)
        assert process.returncode == 0, f"{name} failed:\n{out}"
        outputs[name] = out

    assert "connected" in outputs["quickstart"]
    assert "price update: {'type': 'price'" in outputs["quickstart"]
    assert "price alert: TSLA" in outputs["custom_processor"]
    assert "prices:  {" in outputs["custom_processor"]
    robust = outputs["robust_client"]
    assert "cutting 1 connection(s)" in robust
    assert "'type': 'resumed'" in robust and "reconnect_count=1" in robust
    multi = outputs["multi_client"]
    assert multi.count("=== client statistics ===") >= 2
    for i in range(3):
        assert f"client_{i}: {{'messages_received'" in multi
