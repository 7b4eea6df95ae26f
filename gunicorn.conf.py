"""gunicorn's hooks for aquadash (gunicorn reads ./gunicorn.conf.py by itself: `make serve`).

With PROMETHEUS_MULTIPROC_DIR set, each process keeps its metrics in files in that directory
and /metrics adds them up. prometheus_client's documentation asks for the directory to be
emptied when the server starts, or the last run's processes are counted again, and for each
exited worker to be marked dead.
"""

import os
from pathlib import Path
from typing import Any

from prometheus_client import multiprocess


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def on_starting(server: Any) -> None:
    """Empty the metrics directory of the files of processes that are gone. A `make worker`
    running beside the server on this machine, sharing the directory, keeps its files."""
    if not (directory := os.environ.get("PROMETHEUS_MULTIPROC_DIR")):
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for file in path.glob("*.db"):
        # The files are named <kind>_<pid>.db (gauges: <kind>_<mode>_<pid>.db).
        pid = file.stem.rpartition("_")[2]
        if not pid.isdigit() or not _alive(int(pid)):
            file.unlink(missing_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
