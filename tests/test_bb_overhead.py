"""benchmarks/bb_overhead.py's timing harness: blocks taken in turns, the first step of each block dropped, and
PyTorch's step in a process of its own."""

import importlib
import sys

import click
import pytest
from conftest import ROOT


def _bench():
    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.insert(0, str(ROOT / "benchmarks"))  # also seen by the spawned PyTorch process
    return importlib.import_module("bb_overhead")


def test_interleave_takes_turns_in_blocks_and_drops_each_blocks_first_step():
    bench = _bench()
    calls = []

    def fake(name, cold):
        def block(start, n):
            calls.append((name, start, n))
            # the step after another stepper ran is slow; the rest take 1 s wall and 2 s CPU
            return [(cold if j == 0 else 1.0, 2.0) for j in range(n)]

        return block

    wall, cpu = bench.interleave({"a": fake("a", 50.0), "b": fake("b", 70.0)}, repeats=3, block=2)
    assert calls == [("a", 1, 3), ("b", 1, 3), ("a", 4, 3), ("b", 4, 3), ("a", 7, 3), ("b", 7, 3)]
    assert wall == {"a": 1.0, "b": 1.0} and cpu == {"a": 2.0, "b": 2.0}


def test_interleave_medians_per_stepper():
    bench = _bench()
    times = iter([5.0, 1.0, 3.0, 9.0, 2.0, 4.0, 8.0, 6.0])

    def block(start, n):
        return [(next(times), 0.5) for _ in range(n)]

    wall, cpu = bench.interleave({"x": block}, repeats=2, block=3)
    assert wall == {"x": 5.0} and cpu == {"x": 0.5}  # median of 1, 3, 9, 4, 8, 6 (5 and 2 dropped)


@pytest.mark.slow
def test_the_pytorch_step_runs_in_a_child_process():
    pytest.importorskip("torch")
    bench = _bench()
    with bench.torch_block(0.25, 32, 2) as block:
        out = block(1, 2)
    assert len(out) == 2 and all(w > 0 and c >= 0 for w, c in out)


@pytest.mark.slow
def test_a_pytorch_process_that_fails_to_start_is_a_one_line_error():
    pytest.importorskip("torch")
    bench = _bench()
    refused = pytest.raises(click.ClickException, match="the PyTorch reference process did not start")
    with refused, bench.torch_block(-1.0, 32, 2):  # a negative width: torch.nn refuses the layers
        pass


@pytest.mark.parametrize("option", ["--repeats", "--block"])
def test_a_round_or_block_of_no_steps_is_a_one_line_error(option):
    from click.testing import CliRunner

    result = CliRunner().invoke(_bench().main, [option, "0", "--no-torch"])
    assert result.exit_code == 2 and f"Invalid value for '{option}': 0 is not in the range x>=1" in result.output


@pytest.mark.slow
def test_plain_adds_the_plain_kernels_steps_and_their_speed_up():
    from click.testing import CliRunner

    args = ["--model", "digitsnet", "--batch", "4", "--repeats", "1", "--block", "1", "--no-torch", "--plain"]
    result = CliRunner().invoke(_bench().main, args)
    assert result.exit_code == 0, result.output
    lines = {line.split()[0] + (" plain" if " plain " in line else ""): line for line in result.output.splitlines()}
    assert {"float", "bb", "float plain", "bb plain"} <= set(lines)
    assert "fused kernels' speed-up digitsnet: float " in result.output and "x, bb " in result.output
