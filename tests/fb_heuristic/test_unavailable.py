"""The rule for pairs a target cannot run: a pair missing from its table is not deployable there."""

import json

import pytest
from click.testing import CliRunner

from fb_heuristic import deployable_latency, free_bits, network_latency
from fb_heuristic._cli import main
from fb_schema import LatencyTable, LayerConfig, LayerType, MissingLatencyError, NetConfig, Precision, Target

FC = LayerType.linear(64, 10)
K = FC.key
ADD = LayerType.add(8, 8, 8)
# XpulpV2-like: 8b/8b fastest; the table lacks the pairs named per test (kernels that fail on the target).
LAT = {(2, 2): 300, (2, 4): 260, (2, 8): 210, (4, 2): 280, (4, 4): 180, (4, 8): 140, (8, 2): 230, (8, 4): 150,
       (8, 8): 100}  # fmt: skip


def _net(b_in, b_wt, fixed=False):
    return NetConfig("one", {K: FC}, (LayerConfig("fc", K, b_in, b_wt, fixed),))


def _table(lat, missing=()):
    entries = {(K, a, w): v for (a, w), v in lat.items() if (a, w) not in missing}
    return LatencyTable(Target("t1", "xpulpv2"), {K: FC}, entries)


def _fb(b_in, b_wt, lat, missing, fixed=False):
    return free_bits(_net(b_in, b_wt, fixed), _table(lat, missing), on_missing="unavailable")


def test_never_moves_to_an_unavailable_pair():
    # 8b/8b (the fastest) cannot run: 4b/4b goes to 4b/8b (140), the fastest available pair >= it and <= 180.
    out = _fb(4, 4, LAT, {(8, 8)})
    assert out.layers[0].precision == Precision(4, 8)
    assert out.metrics["latency"]["t1"] == 140
    assert "raised_unavailable" not in out.provenance and "not_deployable" not in out.provenance


def test_complete_table_same_as_error_mode():
    for start in ((2, 2), (4, 2), (2, 8), (8, 4)):
        plain = free_bits(_net(*start), _table(LAT))
        ours = free_bits(_net(*start), _table(LAT), on_missing="unavailable")
        assert ours.precisions() == plain.precisions()
        assert ours.metrics["latency"] == plain.metrics["latency"]


def test_unavailable_current_pair_moves_to_fastest_available_higher_pair():
    # 4b/2b cannot run; of the pairs >= it only 4b/4b (180) and 8b/4b (150) can; 8b/4b is faster.
    missing = {(4, 2), (8, 2), (4, 8), (8, 8)}
    out = _fb(4, 2, LAT, missing)
    assert out.layers[0].precision == Precision(8, 4)
    assert out.provenance["raised_unavailable"] == {"fc": ["4b/2b", "8b/4b"]}
    assert out.metrics["latency"]["t1"] == 150
    # Even when every available higher pair is slower than the unavailable one: the move is forced.
    slow = {**LAT, (4, 4): 900, (8, 4): 800}
    assert _fb(4, 2, slow, missing).layers[0].precision == Precision(8, 4)


def test_fixed_input_moves_only_in_weights():
    # b_in fixed at 8: 8b/2b cannot run; 8b/8b is missing too, so 8b/4b (not 4b/x, which is faster nowhere).
    out = _fb(8, 2, LAT, {(8, 2), (8, 8)}, fixed=True)
    assert out.layers[0].precision == Precision(8, 4)


def test_no_available_higher_pair_is_not_deployable():
    out = _fb(4, 4, LAT, {(4, 4), (4, 8), (8, 4), (8, 8)})
    assert out.layers[0].precision == Precision(4, 4)  # nothing to move to
    assert out.provenance["not_deployable"] == ["fc"]
    assert "t1" not in out.metrics["latency"]
    with pytest.raises(MissingLatencyError):
        network_latency(out, _table(LAT, {(4, 4), (4, 8), (8, 4), (8, 8)}))


def test_unavailable_add_is_not_deployable():
    net = NetConfig("two", {K: FC, ADD.key: ADD}, (LayerConfig("fc", K, 4, 4), LayerConfig("add", ADD.key, 4, None)))
    entries = {(K, a, w): v for (a, w), v in LAT.items()} | {(ADD.key, 8, None): 7, (ADD.key, 2, None): 7}
    table = LatencyTable(Target("t1", "xpulpv2"), net.layer_types, entries)
    out = free_bits(net, table, on_missing="unavailable")
    assert out.provenance["not_deployable"] == ["add"]
    assert "t1" not in out.metrics["latency"]
    assert deployable_latency(out, table) is None
    assert deployable_latency(net.with_precisions({"add": Precision(8, None)}), table) == 180 + 7


def test_error_mode_unchanged():
    with pytest.raises(MissingLatencyError):
        free_bits(_net(4, 4), _table(LAT, {(8, 8)}))


def test_cli_unavailable(tmp_path):
    _net(4, 2).save(tmp_path / "c.json")
    _table(LAT, {(4, 2), (8, 2), (4, 8), (8, 8)}).save(tmp_path / "t.json")
    runner = CliRunner()
    args = ["apply", str(tmp_path / "c.json"), str(tmp_path / "t.json"), "-o", str(tmp_path / "fb.json")]
    plain = runner.invoke(main, args)
    assert plain.exit_code == 1 and "--unavailable" in plain.output
    result = runner.invoke(main, [*args, "--unavailable", "--json"])
    assert result.exit_code == 0, result.output
    out = NetConfig.load(tmp_path / "fb.json")
    assert out.layers[0].precision == Precision(8, 4)
    rows = json.loads(result.output)
    assert rows[0]["after"] == "8b/4b" and rows[0]["latency_after"] is None  # the parent cannot run: no latencies
    both = runner.invoke(main, [*args, "--unavailable", "--skip-missing"])
    assert both.exit_code == 2


def test_cli_not_deployable(tmp_path):
    _net(4, 4).save(tmp_path / "c.json")
    _table(LAT, {(4, 4), (4, 8), (8, 4), (8, 8)}).save(tmp_path / "t.json")
    args = [
        "apply",
        str(tmp_path / "c.json"),
        str(tmp_path / "t.json"),
        "-o",
        str(tmp_path / "fb.json"),
        "--unavailable",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "not deployable on t1: no available pair for fc" in result.output
    assert NetConfig.load(tmp_path / "fb.json").provenance["not_deployable"] == ["fc"]
