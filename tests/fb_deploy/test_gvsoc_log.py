"""The GVSOC adapter's log parsing, checksum and cycle logic on logs recorded from real GVSOC runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fb_deploy import ChecksumError, GvsocTools, ToolError, parse_run_log, run_gvsoc
from fb_deploy._adapters import expected_checksums
from fb_deploy._cli import main

GVSOC = Path(__file__).resolve().parents[1] / "fixtures" / "gvsoc"
OLD = GVSOC / "digitsnet-8b-f1924e9"  # main f1924e9's 8b digitsnet: the residual add fails on GVSOC
OLD_NAMES = [f"BNReluConvolution{i}" for i in range(7)] + ["Addition7", "RequantPooling8", "FullyConnected9"]


def test_old_export_log_names_the_failing_add():
    log = parse_run_log((OLD / "gvsoc_run.log").read_text())
    assert [x.name for x in log.layers] == OLD_NAMES
    assert [x.index for x in log.layers] == list(range(10))
    assert [x.cycles for x in log.layers] == [50422, 48894, 74612, 36453, 44258, 52923, 57181, 43222, 34747, 2672]
    assert [x.macs for x in log.layers][:3] == [36864, 36864, 131072]
    assert [x.checksum for x in log.layers] == ["ok"] * 7 + ["failed"] * 3
    add = log.layers[7]
    assert (add.expected, add.computed) == (457263, 314472)
    assert (log.layers[9].expected, log.layers[9].computed) == (6018, 6449)  # "Checking final output"
    assert (log.total_cycles, log.total_macs) == (445384, 653952)
    problems = log.failures(OLD_NAMES)
    assert problems[0] == "Addition7: checksum failed: expected 457263, computed 314472"
    assert len(problems) == 3


def test_truncated_run_reports_missing_layers_and_no_total():
    text = (OLD / "gvsoc_run.log").read_text()
    cut = text[: text.index("Addition7 performance:")]  # the simulation died inside the add
    log = parse_run_log(cut)
    assert len(log.layers) == 7 and all(x.checksum == "ok" for x in log.layers)
    problems = log.failures(OLD_NAMES)
    assert problems == [
        "only 7 of 10 layers reported; missing Addition7, RequantPooling8, FullyConnected9",
        "no 'Final performance' block: the run crashed or timed out",
    ]


def test_layer_without_checksum_and_output_in_l3():
    text = (OLD / "gvsoc_run.log").read_text()
    first = text.index("Checking L2 output: Checksum OK")
    log = parse_run_log(text[:first] + "Output in L3. Expected checksum: 97443" + text[first + 31 :])
    assert log.layers[0].checksum == "missing" and log.layers[0].expected == 97443
    assert log.failures(OLD_NAMES)[0] == "BNReluConvolution0: no output checksum (output in L3, expected 97443)"


def test_perf_final_build_is_refused():
    """A Perf_final build (what fb-profile used to run) prints cycles but no layer checks: not accepted."""
    perf_only = "\nFinal performance:\n  - num cycles: 445384\n  - MACs: 653952\n"
    with pytest.raises(ChecksumError, match="no layer reported .* --verbose_level Check_all"):
        parse_run_log(perf_only)


def test_expected_checksums_from_network_h(tmp_path):
    header = tmp_path / "network.h"
    header.write_text(
        'static char * Layers_name[2] = {"A0", "B1"};\n'
        "static int activations_out_checksum[2][1] = {{\n  97443 },\n{\n  6018 }\n};\n"
    )
    assert expected_checksums(header) == [97443, 6018]


def test_missing_sdk_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.delenv("PULP_SDK_HOME", raising=False)
    with pytest.raises(ToolError, match="no PULP SDK: pass --pulp-sdk DIR or set PULP_SDK_HOME"):
        run_gvsoc(OLD / "model", "mixed-sw", tmp_path / "out", GvsocTools(pulp_sdk=None))
    with pytest.raises(ToolError, match="flow 'mixed': one of mixed-sw, mixed-hw expected"):
        run_gvsoc(OLD / "model", "mixed", tmp_path / "out")
    res = CliRunner().invoke(main, ["gvsoc", str(OLD / "model"), "-o", str(tmp_path / "o"), "--pulp-sdk", "/nowhere"])
    assert res.exit_code == 1 and len(res.output.strip().splitlines()) == 1
    assert "--pulp-sdk /nowhere: configs/pulp-open.sh not found" in res.output


@pytest.mark.parametrize(
    "log,cycles",
    [
        ("digitsnet-8b-mixed-sw.log", [50432, 48842, 74550, 36560, 44165, 52887, 57332, 41585, 34680, 2678]),
        ("digitsnet-8b-mixed-hw.log", [53600, 50791, 72233, 37493, 40145, 54698, 47568, 41988, 34808, 2533]),
        # make demo's bb-locked-mu0.1 (4- and 2-bit layers, its add at 4 + 4 bits) on pulp-open-nn
        (
            "digitsnet-bb-locked-mu0.1-mixed-hw.log",
            [39645, 36992, 39703, 28380, 22184, 38538, 22718, 18629, 34255, 2413],
        ),
    ],
)
def test_fixed_export_logs_pass_every_layer(log, cycles):
    """The same network exported with the add fix, run on pulp-open (mixed-sw) and pulp-open-nn (mixed-hw)."""
    run = parse_run_log((GVSOC / "logs" / log).read_text())
    assert [x.name for x in run.layers] == OLD_NAMES
    assert [x.checksum for x in run.layers] == ["ok"] * 10
    assert [x.cycles for x in run.layers] == cycles
    assert run.total_cycles == sum(cycles) and run.total_macs == 653952
    assert run.failures(OLD_NAMES) == []


def test_timeout_kills_the_whole_process_group(tmp_path):
    """A hung simulation is killed with everything it started, and what it printed is kept."""
    import time

    from fb_deploy._gvsoc import run_group

    pid_file = tmp_path / "child.pid"
    start = time.monotonic()
    code, text = run_group(["bash", "-c", f"echo started; sleep 60 & echo $! > {pid_file}; wait"], timeout=2)
    assert code is None and "started" in text and time.monotonic() - start < 30
    child = int(pid_file.read_text())
    time.sleep(0.2)
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]
