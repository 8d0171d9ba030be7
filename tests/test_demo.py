"""The demo's output: live progress lines, the curve PNG with the stored baseline band."""

import io
import math
import time

import pytest

from vaml_ext import demo
from vaml_ext.mbpo.runner import SMOKE_OVERRIDES

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _seconds(mmss: str) -> int:
    m, s = mmss.split(":")
    return int(m) * 60 + int(s)


def test_baseline_band_is_the_stored_curves_of_the_same_setting():
    base = demo.baseline_for("mbpo_cartpole", 2000, [], ["mle", "ma_l1"])
    assert sorted(base) == ["ma_l1", "mle"]
    for curves in base.values():
        assert sorted(curves) == [0, 1, 2]  # the seeds stored in tests/baselines/mbpo_cartpole_2k_*.csv
        assert [x for x, _ in curves[0]] == list(range(200, 2001, 200))  # env steps done, as returns.csv
    assert [x for x, _ in demo.baseline_for("mbpo_cartpole", 1000, [], ["mle"])["mle"][1]][-1] == 1000
    # no band when the settings differ from every stored regression
    assert demo.baseline_for("mbpo_cartpole", 2000, ["overrides.va_loss_coeff=0.02"], ["mle"]) == {}
    assert demo.baseline_for("mbpo_cartpole", 4000, [], ["mle"]) == {}
    assert demo.baseline_for("mbpo_inv_pendulum", 1000, [], ["mle"]) == {}


def test_curve_png_with_band(tmp_path, monkeypatch):
    import matplotlib
    import matplotlib.axes

    matplotlib.use("Agg")
    runs = [
        {"loss": "mle", "rows": [{"env_steps": 200, "return": 30.0}, {"env_steps": 400, "return": 80.0}]},
        {"loss": "ma_l1", "rows": [{"env_steps": 200, "return": 20.0}, {"env_steps": 400, "return": 60.0}]},
    ]
    base = {  # two stored seeds per loss: the band is their min-max at each step
        "mle": {0: [(200, 20.0), (400, 70.0)], 1: [(200, 40.0), (400, 90.0)]},
        "ma_l1": {0: [(200, 10.0), (400, 50.0)], 1: [(200, 30.0), (400, 55.0)]},
    }
    bands = []
    orig = matplotlib.axes.Axes.fill_between

    def spy(self, x, y1, y2=0, **kw):
        bands.append((list(x), list(y1), list(y2), kw.get("label", "")))
        return orig(self, x, y1, y2, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "fill_between", spy)
    png = demo.plot_curves(runs, base, tmp_path / "sub" / "returns.png", "test")
    data = png.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 10_000
    assert bands == [
        ([200, 400], [20.0, 70.0], [40.0, 90.0], "mle: stored baseline, seeds 0,1 (min-max)"),
        ([200, 400], [10.0, 50.0], [30.0, 55.0], "ma_l1: stored baseline, seeds 0,1 (min-max)"),
    ]
    bands.clear()
    demo.plot_curves(runs, {}, tmp_path / "none.png", "test")  # no stored baseline: no band
    assert bands == []


def test_stored_baseline_of_the_demo_setting_is_found():
    base = demo.baseline_for("mbpo_cartpole", 400, [], ["mle", "ma_l1"])
    assert set(base) == {"mle", "ma_l1"} and all(len(seeds) >= 2 for seeds in base.values())
    assert all(x <= 400 for seeds in base.values() for curve in seeds.values() for x, _ in curve)


def test_progress_lines_steps_return_and_eta(tmp_path):
    run = tmp_path / "mle"
    run.mkdir()
    st = demo.RunState("mle", run, total=1000)
    stream = io.StringIO()
    disp = demo.Display([st], stream=stream, tty=False)
    st.t0 = time.perf_counter()
    disp.refresh(force=True)
    assert "[mle] 0/1,000 env steps (  0%) | return - |" in stream.getvalue()
    assert "ETA ? | setting up / exploring" in stream.getvalue()
    (run / "va_model.csv").write_text("env_step,val_mse\n199,0.1\n")
    st.poll()
    assert st.steps == 200 and math.isnan(st.eta())  # one observation: no pace yet
    st.first = (st.first[0] - 10.0, st.first[1])  # pretend the first step was seen 10 s ago
    (run / "returns.csv").write_text("env_steps,return,wall_time_s\n200,12.0,5\n400,31.5,9\n")
    disp.refresh(force=True)
    last = stream.getvalue().splitlines()[-1]
    # 200 steps in 10 s between the first and the last observation -> 30 s for the remaining 600
    assert last.startswith("[mle] 400/1,000 env steps ( 40%) | return 31.5 (best 31.5) |") and "running" in last
    assert 29 <= _seconds(last.split("ETA ")[1].split(" ")[0]) <= 30, last
    st.first, st.last = [(t - 12.0, n) for t, n in (st.first, st.last)]  # 12 s on, no new step: counts down
    assert 17.5 <= st.eta() <= 18.5
    disp.refresh()  # nothing changed and the heartbeat interval has not passed: no new line
    assert stream.getvalue().splitlines()[-1] == last
    st.end = (0, 12.0)
    disp.finished(st)
    assert stream.getvalue().splitlines()[-1].endswith("ETA 0:00 | done")


@pytest.mark.slow  # > 5 s: kept out of make test-fast (still in make test)
def test_demo_writes_the_curve_png_on_a_tiny_budget(tmp_path, capsys):
    extra = [o for o in SMOKE_OVERRIDES if "num_steps" not in o]
    assert demo.main(["--losses", "mle", "--steps", "200", "--jobs", "1", "--out", str(tmp_path), *extra]) == 0
    out = capsys.readouterr().out
    png = tmp_path / "returns.png"
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert f"Curves: {png} (no stored baseline has these settings" in out
    assert "[mle] 200/200 env steps (100%)" in out and "| done" in out  # plain progress lines (not a TTY)
    assert "== MBPO demo summary ==" in out
    log = (tmp_path / "mle.log").read_text()
    assert "| results" in log and "episode_reward: " in log and "episode_reward: " not in out  # mbrl's lines: log only
    assert (tmp_path / "mle" / "done.json").is_file()


def test_one_plain_line_per_evaluation_with_its_own_return(tmp_path):
    """Model training is logged before the evaluation at the same step; the plain display
    must not print that step first with the previous evaluation's return."""
    run = tmp_path / "mle"
    run.mkdir()
    st = demo.RunState("mle", run, total=2000)
    stream = io.StringIO()
    disp = demo.Display([st], stream=stream, tty=False, interval=1e9)
    st.t0 = time.perf_counter()
    (run / "returns.csv").write_text("env_steps,return,wall_time_s\n200,36.0,5\n")
    disp.refresh()
    (run / "va_model.csv").write_text("env_step,val_mse\n199,0.1\n399,0.1\n")  # trained at 400, not evaluated yet
    disp.refresh()
    (run / "returns.csv").write_text("env_steps,return,wall_time_s\n200,36.0,5\n400,91.0,9\n")
    disp.refresh()
    disp.refresh()  # nothing new: no line
    lines = stream.getvalue().splitlines()
    assert [ln.split(" | ")[0:2] for ln in lines] == [
        ["[mle] 200/2,000 env steps ( 10%)", "return 36.0 (best 36.0)"],
        ["[mle] 400/2,000 env steps ( 20%)", "return 91.0 (best 91.0)"],
    ]
