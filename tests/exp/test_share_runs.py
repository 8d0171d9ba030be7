"""exp/share_runs.py: a finished run both figures make is shared, relabelled, never when it differs."""

import json

from tests.support import load_exp_script
from vaml_ext.runlog import rundir


def _fake_run(root, fig, preset, env, method, seed, share, budget=None):
    run = share.resolved(fig, preset, env, method, seed)
    if budget is not None:
        run["budget"] = budget
    d = root / fig / preset / env / method / f"seed{seed}"
    d.mkdir(parents=True)
    rundir.write_run_config(d, dict(run, provenance={"commit": "abc"}))
    (d / "returns.csv").write_text("env_steps,return,wall_time_s\n0,1.0,0.1\n")
    (d / "ckpt").mkdir()
    (d / "ckpt" / "latest.pt").write_bytes(b"x")  # never copied
    rundir.write_done(d, {"final_return": 1.0})
    return d


def test_shared_runs_are_relabelled_and_differing_ones_refused(tmp_path):
    share = load_exp_script("", "share_runs")
    _fake_run(tmp_path, "fig2", "smoke", "pendulum", "mle", 1, share)
    _fake_run(tmp_path, "fig2", "smoke", "pendulum", "ma_vaml", 1, share)  # not a Figure-4 method
    _fake_run(tmp_path, "fig2", "smoke", "pendulum", "ma_l1", 1, share, budget=["slbo.n_stages=3"])
    unfinished = _fake_run(tmp_path, "fig2", "smoke", "pendulum", "ma_l1", 2, share)
    (unfinished / "done.json").unlink()
    res = share.share(tmp_path, "fig2", "fig4", "smoke")
    assert res["shared"] == ["fig2/smoke/pendulum/mle/seed1"]
    assert res["not in target"] == ["fig2/smoke/pendulum/ma_vaml/seed1"]
    assert res["differs"] == ["fig2/smoke/pendulum/ma_l1/seed1 (budget)"]
    dest = tmp_path / "fig4" / "smoke" / "pendulum" / "mle" / "seed1"
    rec = rundir.read_run_config(dest)
    assert rec["figure"] == "fig4" and rec["provenance"] == {
        "commit": "abc",
        "shared_from": "fig2/smoke/pendulum/mle/seed1",
    }
    assert rundir.is_done(dest) and json.loads((dest / "done.json").read_text())["final_return"] == 1.0
    assert not (dest / "ckpt").exists()
    from vaml_ext.exp.run import recorded_config

    want = share.resolved("fig4", "smoke", "pendulum", "mle", 1)
    assert recorded_config(rec, want) == want  # a fig4 sweep takes it as its own run
    assert share.share(tmp_path, "fig2", "fig4", "smoke")["exists"] == ["fig2/smoke/pendulum/mle/seed1"]
