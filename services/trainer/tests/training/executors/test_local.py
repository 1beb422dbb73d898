"""executors/local.py: the command line of a job (one process or torchrun), and a real
child process followed through its log and cancelled with its whole process group."""

from __future__ import annotations

import sys
import time

import pytest
from medgo_trainer.training.executors import local


def test_local_command_single_process_and_torchrun(tmp_path):
    single = local.build_command("dpo", "medgo-tiny-dpo", tmp_path, ["trl.max_steps=3"])
    assert single == [sys.executable, "-m", "medgo_trainer.cli", "dpo", "--recipe",
                      "medgo-tiny-dpo", "--out", str(tmp_path), "--set", "trl.max_steps=3"]
    multi = local.build_command("sft", "r.yaml", tmp_path, nproc=4)
    assert multi[:6] == [sys.executable, "-m", "torch.distributed.run", "--standalone",
                         "--nproc_per_node=4", "-m"]
    assert multi[6:8] == ["medgo_trainer.cli", "sft"]
    with pytest.raises(ValueError, match="unknown stage 'rlhf'"):
        local.build_command("rlhf", "r.yaml", tmp_path)


def test_local_job_logs_progress_and_cancels_its_process_group(tmp_path):
    script = ("import sys, time\n"
              "sys.stderr.write('Map: 100%|##| 9/9 [00:00]\\n')\n"
              "sys.stderr.write('\\r 40%|####  | 2/5 [00:01<00:02]'); sys.stderr.flush()\n"
              "time.sleep(300)\n")
    log = tmp_path / "job.log"
    handle, proc = local.start([sys.executable, "-c", script], log)
    try:
        while local.progress(log) is None and proc.poll() is None:
            time.sleep(0.1)
        assert local.progress(log) == (2, 5)  # the training bar, not the "Map:" one
        assert "Map: 100%" in local.read_log(log)
        assert local.cancel(handle.pid) is True
        assert proc.wait(timeout=30) == -15  # SIGTERM
    finally:
        proc.kill()
    assert local.cancel(handle.pid) is False
    assert not local.is_alive(handle.pid)
