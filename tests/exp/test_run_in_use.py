"""A sweep whose run directory another process is writing: that run is reported "in use",
skipped (nothing of the run is written), and counted in the sweep summary."""

from tests.support import lock_held_elsewhere
from vaml_ext.runlog.lock import HOLDER_FILE


def test_run_in_use_is_skipped_and_counted(tmp_path, capsys):
    from vaml_ext.exp.__main__ import main

    run_dir = tmp_path / "fig1" / "smoke" / "grid5" / "mle" / "seed0"
    with lock_held_elsewhere(run_dir) as holder:
        rc = main(
            [
                "fig1",
                "--preset",
                "smoke",
                "--envs",
                "grid5",
                "--methods",
                "mle",
                "--seeds",
                "0",
                "--launcher",
                "basic",
                "--no-aggregate",
                "--out",
                str(tmp_path),
            ]
        )
        out = capsys.readouterr().out
        assert rc == 1
        assert "0/1 runs done, 0 failed, 1 in use by another process, 0 missing" in out
        assert f"IN USE grid5/mle/seed0 by pid {holder.pid} on host" in out
        assert not (run_dir / "run.yaml").exists() and not (run_dir / "failed.json").exists()
        assert not (run_dir / "returns.csv").exists()
    assert not (run_dir / HOLDER_FILE).exists()
