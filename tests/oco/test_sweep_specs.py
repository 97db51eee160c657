"""RunSpec (validation, JSON round trip, content hash) and sweep files (grid expansion, errors with positions).

Nothing here runs the simulator: these are the checks that must hold before any worker starts.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from online_convex.sweep import SPEC_VERSION, RunSpec, spec_key
from online_convex.sweep_file import parse_sweep

BASE = dict(
    method="s_adagrad", config={"ell": 3}, stream="power_law", shape=(6,), T=40, seeds=2, entropy=7, eta=0.5
)


def spec(**kw) -> RunSpec:
    return RunSpec(**{**BASE, **kw})


# --- RunSpec -------------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    method=st.sampled_from(["ogd", "adagrad_full", "s_adagrad"]),
    T=st.integers(1, 10_000),
    seeds=st.integers(1, 16),
    entropy=st.integers(0, 2**63),
    eta=st.one_of(st.just("theory"), st.floats(1e-8, 1e8)),
    radius=st.floats(1e-3, 1e3),
    d=st.integers(1, 12),
)
def test_json_round_trip_keeps_spec_and_key(method, T, seeds, entropy, eta, radius, d):
    """from_json(to_json(s)) == s with the same hash and key: the store can trust a spec read back."""
    s = RunSpec(
        method=method,
        stream="low_rank_noise",
        stream_params={"noise": 0.5},
        shape=(d,),
        domain="l2_ball",
        domain_params={"radius": radius},
        T=T,
        seeds=seeds,
        entropy=entropy,
        eta=eta,
    )
    back = RunSpec.from_json(s.to_json())
    assert back == s and hash(back) == hash(s) and back.key == s.key
    assert json.loads(s.to_json()) == s.to_dict()


def test_key_is_a_function_of_content_only():
    """Equal content ⇒ equal key (config defaults filled in; list vs tuple); any changed field ⇒ another key."""
    assert spec().key == spec(config={"ell": 3, "delta": 0.0}).key == spec(shape=[6]).key
    assert spec(config={"ell": 3, "delta": 1}).key == spec(config={"ell": 3, "delta": 1.0}).key
    assert spec(eta=1).key == spec(eta=1.0).key
    changes = [  # one field changed at a time (the domain with the parameters it needs)
        dict(method="adagrad_full", config={}),
        dict(stream="low_rank_noise"),
        dict(stream_params={"alpha": 2.0}),
        dict(shape=(7,)),
        dict(problem="logistic"),
        dict(domain="l2_ball", domain_params={"radius": 1.0}),
        dict(domain="l2_ball", domain_params={"radius": 2.0}),
        dict(T=41),
        dict(seeds=3),
        dict(entropy=8),
        dict(eta=0.25),
        dict(checkpoints=5),
        dict(config={"ell": 2}),
    ]
    assert {k for c in changes for k in c} == {f.name for f in dataclasses.fields(RunSpec)}
    keys = {spec().key} | {spec(**c).key for c in changes}
    assert len(keys) == len(changes) + 1


def test_key_covers_the_spec_version():
    """A result written under another SPEC_VERSION can never be mistaken for this version's."""
    d = spec().to_dict()
    assert spec_key(d) == spec().key != spec_key(d, version=SPEC_VERSION + 1)


def test_specs_are_hashable_and_frozen():
    s = spec()
    assert len({s, spec(), spec(T=41)}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.T = 3


@pytest.mark.parametrize(
    ("kw", "err", "match"),
    [
        (dict(method="nope"), ValueError, "unknown method 'nope'; registered:.*s_adagrad"),
        (dict(config={"elll": 3}), ValueError, "config .* not valid for method 's_adagrad'.*fields: ell"),
        (dict(config={"ell": 0}), ValueError, "ell must be >= 1; got 0"),
        (dict(config={"ell": object()}), TypeError, "config.*values must be bool, int"),
        (dict(config={"ell": float("nan")}), ValueError, "must be finite"),
        (dict(stream="nope"), ValueError, "unknown stream 'nope'; known:.*power_law"),
        (dict(problem="squared"), ValueError, "unknown problem 'squared'"),
        (dict(domain="ball"), ValueError, "unknown domain 'ball'"),
        (dict(shape=None, stream="wine", domain="ball"), ValueError, "unknown domain 'ball'"),
        (dict(domain="l2_ball", domain_params={"radius": -1.0}), ValueError, "radius must be in"),
        (dict(stream_params={"problem": "logistic"}), ValueError, "stream_params may not hold 'problem'"),
        (dict(stream_params=[1, 2]), TypeError, "stream_params must be a mapping"),
        (
            dict(stream_params={"alphaa": 1.0}),
            ValueError,
            r"unknown stream_params \['alphaa'\] for stream 'power_law'; allowed: alpha, scale, rotate, label_noise$",
        ),
        (
            dict(shape=None, stream="wine", stream_params={"path": "a.svm"}),
            ValueError,
            r"unknown stream_params \['path'\] for stream 'wine'; allowed: positive, shuffle, standardize$",
        ),
        (dict(shape=(0,)), ValueError, "shape must hold ints >= 1"),
        (dict(T=0), ValueError, "T must be >= 1; got 0"),
        (dict(T=2.5), TypeError, "T must be an int"),
        (dict(seeds=0), ValueError, "seeds must be >= 1"),
        (dict(entropy=-1), ValueError, "entropy must be >= 0"),
        (dict(checkpoints=0), ValueError, "checkpoints must be >= 1"),
        (dict(eta=0.0), ValueError, r"eta must be in \(0.0, inf\]"),
        (dict(eta=float("inf")), ValueError, "eta must be finite"),
        (dict(eta="fast"), ValueError, "eta must be a real > 0 or 'theory'; got 'fast'"),
        (dict(method=3), TypeError, "method must be a str"),
    ],
)
def test_bad_spec_is_refused_naming_argument_and_value(kw, err, match):
    with pytest.raises(err, match=match):
        spec(**kw)


def test_from_dict_refuses_unknown_fields():
    with pytest.raises(ValueError, match=r"unknown fields \['colour'\]; allowed:"):
        RunSpec.from_dict({**spec().to_dict(), "colour": 1})


# --- sweep files -----------------------------------------------------------------------------------------

TOML = """\
[sweep]
T = 30
seeds = 2
entropy = 5

[[streams]]
name = "power_law"
shape = [6]

[[streams]]
name = "wine"
domain = "l2_ball"
domain_params = { radius = 3.0 }

[[methods]]
name = "s_adagrad"
config = { delta = 0.0 }
grid = { ell = [2, 3, 4] }
eta = [0.1, 1.0]

[[methods]]
name = "adagrad_full"
eta = 0.5
"""


def test_file_expands_to_streams_x_grid_x_eta():
    """2 streams × (3 ranks × 2 η + 1 × 1 η) = 14 distinct runs, each carrying the [sweep] defaults."""
    specs = parse_sweep(TOML, "s.toml")
    assert len(specs) == len({s.key for s in specs}) == 2 * (3 * 2 + 1)
    assert {(s.T, s.seeds, s.entropy) for s in specs} == {(30, 2, 5)}
    wine = [s for s in specs if s.stream == "wine"]
    assert {s.domain for s in wine} == {"l2_ball"} and all(s.shape is None for s in wine)
    assert sorted({dict(s.config)["ell"] for s in specs if s.method == "s_adagrad"}) == [2, 3, 4]


def _line_of(text: str, needle: str) -> int:
    return next(i + 1 for i, line in enumerate(text.splitlines()) if needle in line)


@pytest.mark.parametrize(
    ("old", "new", "needle", "match"),
    [  # (text replaced, replacement, the line the error must point at, message)
        (
            "eta = 0.5",
            "etaa = 0.5",
            "etaa",
            r"\[\[methods\]\] #2: unknown key 'etaa'; allowed: config, eta, grid, name",
        ),
        ("seeds = 2", "seed = 2", "seed = 2", r"\[sweep\]: unknown key 'seed'"),
        (
            'name = "adagrad_full"',
            'name = "adagrad_fulll"',
            "adagrad_fulll",
            "unknown method 'adagrad_fulll'",
        ),
        ("[2, 3, 4]", "[2, 0, 4]", "grid = ", r"#1: s_adagrad.Config: ell must be >= 1; got 0"),
        ("shape = [6]", "shape = [6]\nsize = 3", "size = 3", r"\[\[streams\]\] #1: unknown key 'size'"),
        (
            "shape = [6]",
            "shape = [6]\nparams = { alpha = 1.0, alphaa = 2.0 }",
            "alphaa",
            r"\[\[streams\]\] #1: RunSpec: unknown stream_params \['alphaa'\] for stream 'power_law'",
        ),
        ("radius = 3.0", "radius = -3.0", "radius", r"\[\[streams\]\] #2: .*radius must be in"),
        ("T = 30", "T = 0", "T = 0", r"\[sweep\]: RunSpec: T must be >= 1"),
        ("[sweep]", "[sweeps]", "[sweeps]", "top level: unknown key 'sweeps'"),
    ],
)
def test_file_errors_name_key_and_line(old, new, needle, match):
    text = TOML.replace(old, new)
    with pytest.raises(ValueError, match=match) as e:
        parse_sweep(text, "s.toml")
    assert str(e.value).startswith(f"s.toml:{_line_of(text, needle)}: ")


def test_file_syntax_error_gives_line_and_column():
    with pytest.raises(ValueError, match=r"s.toml: invalid TOML: .*\(at line 2, column 5\)"):
        parse_sweep(TOML.replace("T = 30", "T = = 30"), "s.toml")


def test_file_needs_streams_and_methods():
    with pytest.raises(ValueError, match=r"needs at least one \[\[methods\]\] table"):
        parse_sweep(TOML.split("[[methods]]")[0], "s.toml")


# --- command line ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--workers", "0"], "--workers must be >= 1; got 0"),
        (["--timeout", "0"], "--timeout must be > 0 seconds; got 0.0"),
        (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler is for --executor dask; got --executor local"),
    ],
)
def test_cli_refuses_bad_arguments_before_any_work(tmp_path, capsys, extra, message):
    from memopt_theory.cli import main

    path = tmp_path / "s.toml"
    path.write_text(TOML)
    assert main(["sweep", str(path), "--out", str(tmp_path / "o"), *extra]) == 2
    assert f"memopt sweep: error: {message}" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_names_a_missing_file(tmp_path, capsys):
    from memopt_theory.cli import main

    assert main(["sweep", str(tmp_path / "none.toml")]) == 2
    assert "sweep file" in capsys.readouterr().err
