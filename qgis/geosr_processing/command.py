"""The geosr command line the algorithm runs, and its progress read back; no QGIS import, so tests need no QGIS.

The algorithm runs ``geosr upsample`` in a child process, so torch and geosr's libraries stay out of
QGIS's own process (and out of its Python, whose numpy and GDAL are QGIS's). The child's stderr is
not a terminal, so geosr writes plain progress lines there (geosr.runtime.progress), which
:class:`Progress` turns into one percentage.
"""
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

# geosr's plain progress lines: "tiles: 3/16 tiles (19%), 42 s elapsed, about 3 min 10 s left".
LINE = re.compile(r"^(?P<stage>[a-z ]+): (?P<done>\d+)/(?P<total>\d+) \w+ \((?P<percent>\d+)%\)")
# Where each stage's work falls in the whole run, in percent: the scene network's training (scene and
# hybrid modes) comes first; the tiles fill what is left after it.
TRAINING_SHARE = 40
# Set by QGIS (or OSGeo4W) for its own Python and GDAL; geosr has its own, and QGIS's would break them.
QGIS_ONLY = ("PYTHONPATH", "PYTHONHOME", "PROJ_LIB", "PROJ_DATA", "GDAL_DATA", "GDAL_DRIVER_PATH",
             "QT_PLUGIN_PATH", "QGIS_PREFIX_PATH")


class Progress:
    """One percentage over geosr's stages, from its plain progress lines."""

    def __init__(self):
        self.percent, self.tiles_from = 0.0, 0.0

    def read(self, line: str):
        """The (percent, text) a line says, or None for a line that is not progress."""
        m = LINE.match(line.strip())
        if not m:
            return None
        stage, fraction = m["stage"], int(m["done"]) / max(1, int(m["total"]))
        if stage == "scene training":
            self.percent = max(self.percent, TRAINING_SHARE * fraction)
            self.tiles_from = TRAINING_SHARE
        elif stage == "tiles":
            self.percent = max(self.percent, self.tiles_from + (100 - self.tiles_from) * fraction)
        else:
            return None
        return self.percent, f"{stage}: {m['done']}/{m['total']}"


def child_environment(environ=None) -> dict:
    """The environment for the geosr command: QGIS's own paths taken out."""
    env = dict(os.environ if environ is None else environ)
    for name in QGIS_ONLY:
        env.pop(name, None)
    env["PYTHONIOENCODING"] = "utf-8"  # what run() decodes
    return env


def _parent_death_signal():
    """A function for the child (Linux) that asks for SIGTERM when QGIS or qgis_process ends, so the run never
    outlives it; None elsewhere. libc is loaded here, in the parent: the child, forked from a threaded
    process, only makes the one call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def run(args, on_line, cancelled, poll: float = 0.2) -> tuple:
    """Run ``args``, pass each line it prints to ``on_line`` (on this thread), and stop it when ``cancelled()``.

    Returns (exit status, whether it was cancelled, the lines). A cancelled child gets SIGTERM, on
    which geosr removes its partial output (and, with ``--on-interrupt discard``, its checkpoint)
    and exits; SIGKILL follows if it has not after 30 s."""
    kwargs = {}
    if _parent_death_signal() is not None:
        kwargs["preexec_fn"] = _parent_death_signal()
    elif sys.platform == "win32":
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=child_environment(), text=True, encoding="utf-8", errors="replace", bufsize=1,
                             **kwargs)
    waiting, lines = queue.Queue(), []

    def pump():
        for line in child.stdout:
            waiting.put(line.rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()

    def drain():
        while not waiting.empty():
            lines.append(waiting.get())
            on_line(lines[-1])

    stopped = False
    while child.poll() is None:
        drain()
        if not stopped and cancelled():
            stopped = True
            child.send_signal(signal.CTRL_BREAK_EVENT if sys.platform == "win32" else signal.SIGTERM)
            deadline = time.monotonic() + 30
            while child.poll() is None and time.monotonic() < deadline:
                time.sleep(poll)
            if child.poll() is None:
                child.kill()
        time.sleep(poll)
    reader.join(timeout=5)
    child.stdout.close()
    drain()
    return child.returncode, stopped, lines


def error_of(lines) -> str:
    """geosr's message from a failed run's output: its "Error: ..." lines, else the last lines."""
    found = [line.split("Error:", 1)[1].strip() for line in lines if line.lstrip().startswith("Error:")]
    return "\n".join(found) if found else "\n".join(lines[-10:])
