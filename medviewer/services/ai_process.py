"""InferenceProcess: the app's whole-volume segmentation in a child process of its own.

In the app's process, a segmentation on the AI thread still takes the GIL from the GUI thread:
torch's C-level start-up and model loading hold it for 200-450 ms at a time on the first run,
and a warm run stalls the window 37-57 ms when the other core is busy (benchmark
``responsiveness``). In a child process none of that touches the GUI's interpreter: the
window only waits on a pipe (the GIL released).

One child per app process (:func:`shared`), started on first use (or by the AI preload) and
kept: it imports torch once and keeps the model of the last run (the same
:class:`~medviewer.services.ai_runs.ModelLane`, so the same thread policy: every core but one).
It runs :func:`~medviewer.services.ai_runs.segment_volume` itself, the one code path of the
app and of ``medviewer predict``. The volume goes in, and the labels, entropy and variance
come back, through memory-mapped files (``/dev/shm`` where there is one) that both processes
map: nothing large is pickled, and the results are not copied in the app. Progress, the device
chosen and cancellation cross a pipe. A child that dies (out of memory, a crash) is reported
as a clear error and replaced at the next run; a cancel it does not honour within
:data:`CANCEL_GRACE_S` kills it. Off with ``MEDVIEWER_AI_PROCESS=0`` (runs on the AI thread)."""
from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import fields, replace
from pathlib import Path
from typing import Optional

import numpy as np

from medviewer.jobs import Cancelled, CancelToken, Reporter

log = logging.getLogger(__name__)

CANCEL_GRACE_S = 10.0  # a cancelled child that has not stopped by then is killed
START_TIMEOUT_S = 120.0  # spawning and importing the inference code (a cold disk is slow)
POLL_S = 0.05
# the child's CPU priority below the app's (Unix niceness; 0: the same). With every core busy
# the scheduler then runs the GUI thread first: the window keeps turning, the run waits.
NICE = int(os.environ.get("MEDVIEWER_AI_NICE", "5") or 0)


def enabled() -> bool:
    """Whether the app runs segmentation in a child process (``MEDVIEWER_AI_PROCESS``; not
    in a frozen bundle, whose executable is the app itself)."""
    import sys

    if getattr(sys, "frozen", False):
        return False
    return os.environ.get("MEDVIEWER_AI_PROCESS", "1").strip().lower() not in (
        "0", "no", "off", "false")


class InferenceProcessError(RuntimeError):
    """The inference process could not start or stopped in the middle of a run."""


def _scratch_dir() -> str:
    """Where the shared arrays live: RAM-backed ``/dev/shm`` when it exists and has room."""
    shm = Path("/dev/shm")
    try:
        if shm.is_dir() and os.access(shm, os.W_OK):
            return str(shm)
    except OSError:
        pass
    return tempfile.gettempdir()


class _SharedArray:
    """A memory-mapped scratch file both processes map (created here, removed by
    :meth:`release`; the mapping outlives the file's name)."""

    def __init__(self, shape: tuple, dtype, folder: str):
        self.path = os.path.join(folder, f"medviewer-ai-{os.getpid()}-{uuid.uuid4().hex}.bin")
        self.shape, self.dtype = tuple(int(n) for n in shape), np.dtype(dtype)
        self.array = np.memmap(self.path, dtype=self.dtype, mode="w+", shape=self.shape)

    def spec(self) -> tuple:
        return self.path, self.dtype.str, self.shape

    def release(self) -> None:
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def result(self) -> np.ndarray:
        """The array (a plain ndarray view that keeps the mapping alive)."""
        return np.asarray(self.array)


def _map(spec: tuple, mode: str) -> np.ndarray:
    path, dtype, shape = spec
    return np.memmap(path, dtype=np.dtype(dtype), mode=mode, shape=tuple(shape))


# ------------------------------------------------------------------------------ the child
class _SocketToken(CancelToken):
    """A cancel token set from the other process: any byte on the cancel socket."""

    def __init__(self, conn):
        self._conn = conn
        self._set = False

    def cancel(self) -> None:
        self._set = True

    @property
    def cancelled(self) -> bool:
        if not self._set and self._conn.poll(0):
            self._conn.recv_bytes()
            self._set = True
        return self._set

    def raise_if_cancelled(self) -> None:
        if self.cancelled:
            raise Cancelled()

    def reset(self) -> None:
        while self._conn.poll(0):
            self._conn.recv_bytes()
        self._set = False


def _child_main(conn, cancel_conn) -> None:  # pragma: no cover - runs in the child
    """The child's loop: one request at a time until "quit" or the pipe closes."""
    from medviewer.services import ai_runs

    lane = ai_runs.ModelLane(on_device=lambda dev, label: conn.send(("device", dev, label)))
    token = _SocketToken(cancel_conn)
    if NICE:
        try:  # the window's process first when the cores are contended
            os.nice(NICE)
        except (AttributeError, OSError):
            pass
    try:
        ai_runs.preload_ai_libraries()
        conn.send(("ready", os.getpid()))
    except (BrokenPipeError, ConnectionError, EOFError):
        return  # the app quit while this process was starting: nobody to tell
    except BaseException as exc:  # noqa: BLE001 - said to the app
        try:
            conn.send(("error", None, type(exc).__name__, str(exc), ""))
        except OSError:
            pass
        return
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "quit":
            return
        req = msg[1]
        token.reset()
        try:
            card = req["card"]
            lane.reconfigure(req["preference"], req["threads"], req["precision"])
            kind, values = req["volume"]
            volume = kind(array=_map(req["input"], "r"), **values)
            progress = Reporter(lambda p: conn.send(("progress", p.done, p.total, p.message)),
                                token)  # progress to the pipe, cancel from the socket
            ctx = ai_runs.InferenceContext(lane, progress)
            run = ai_runs.segment_volume(ctx, card, volume, req["z"], req["method"],
                                         req["force"], req["keep_entropy"])
            for name in ("labels", "entropy", "variance"):
                arr, spec = getattr(run, name), req["outputs"].get(name)
                if arr is not None and spec is not None:
                    out = _map(spec, "r+")
                    out[...] = arr
                    out.flush()
                    del out
            conn.send(("done", replace(run, labels=None, entropy=None, variance=None),
                       {name: getattr(run, name) is not None
                        for name in ("labels", "entropy", "variance")}))
        except Cancelled:
            conn.send(("cancelled",))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the app
            try:
                import pickle

                pickle.loads(pickle.dumps(exc))
                blob = exc
            except Exception:  # noqa: BLE001 - not picklable: its name and message only
                blob = None
            conn.send(("error", blob, type(exc).__name__, str(exc),
                       "".join(traceback.format_tb(exc.__traceback__))))
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                return


def _main(argv) -> int:  # pragma: no cover - the child's entry point
    from multiprocessing.connection import Connection

    try:
        _child_main(Connection(int(argv[0])), Connection(int(argv[1])))
    except (BrokenPipeError, ConnectionError, EOFError):
        pass  # the app went away in the middle of a run: its results have no reader
    return 0


# ------------------------------------------------------------------------------ the parent
class InferenceProcess:
    """The child process and its pipe; one run at a time (a lock), from any thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self._proc = None
        self._conn = None
        self._cancel = None
        self.pid: Optional[int] = None
        self._ready = False  # the child said it imported the inference code
        self.runs = 0  # segmentations done by children of this object (tests, benchmarks)

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Spawn the child now (the AI preload) if it is not running; returns at once."""
        with self._lock:
            self._spawn()

    def _spawn(self) -> None:
        """A fresh interpreter (``python -m medviewer.services.ai_process``), never a fork of
        this one (Qt and torch threads) nor multiprocessing's spawn (which re-runs the
        caller's main script), with two socket pairs: requests/results and cancel."""
        if self.alive:
            return
        self._stop()
        import socket
        import subprocess
        import sys
        from multiprocessing.connection import Connection

        ours, theirs = socket.socketpair()
        cancel_ours, cancel_theirs = socket.socketpair()
        fds = [theirs.fileno(), cancel_theirs.fileno()]
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # where this medviewer is imported from
        env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(
            os.pathsep) if p])
        try:
            self._proc = subprocess.Popen([sys.executable, "-m", __name__] + [str(f) for f in fds],
                                          pass_fds=fds, env=env, stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
            cancel_theirs.close()
        self._conn = Connection(ours.detach())
        self._cancel = Connection(cancel_ours.detach())
        self.pid, self._ready = self._proc.pid, False

    def _wait_ready(self, ctx) -> None:
        t0 = time.monotonic()
        while not self._ready:
            if ctx is not None and ctx.cancelled():
                raise Cancelled()
            if self._conn.poll(POLL_S):
                msg = self._recv()
                if msg[0] == "ready":
                    self._ready = True
                elif msg[0] == "error":
                    raise InferenceProcessError(f"the inference process could not start: "
                                                f"{msg[2]}: {msg[3]}")
            elif not self.alive:
                raise InferenceProcessError(self._died())
            elif time.monotonic() - t0 > START_TIMEOUT_S:
                self._stop()
                raise InferenceProcessError(
                    f"the inference process did not start within {START_TIMEOUT_S:.0f} s")

    def _recv(self):
        try:
            return self._conn.recv()
        except (EOFError, OSError) as exc:
            raise InferenceProcessError(self._died()) from exc

    def _died(self) -> str:
        proc = self._proc
        code = None
        if proc is not None:
            try:
                code = proc.wait(2)
            except Exception:  # noqa: BLE001 - still running: _stop kills it
                code = None
        self._stop()
        why = " (killed: out of memory?)" if code is not None and code < 0 else ""
        return (f"the inference process stopped unexpectedly (exit code {code}){why}; "
                "the next run starts a new one")

    def _stop(self) -> None:
        proc, conn, cancel = self._proc, self._conn, self._cancel
        self._proc = self._conn = self._cancel = None
        self.pid, self._ready = None, False
        if conn is not None:
            try:
                conn.send(("quit",))
            except (OSError, ValueError):
                pass
            conn.close()
        if cancel is not None:
            cancel.close()
        if proc is not None:
            try:
                proc.wait(5)
            except Exception:  # noqa: BLE001 - stuck: killed
                proc.kill()
                proc.wait(5)

    def close(self) -> None:
        """Stop the child (the app quitting)."""
        with self._lock:
            self._stop()

    def segment(self, ctx, card, volume, z: Optional[int] = None, method: str = "entropy",
                force: bool = False, keep_entropy: bool = True):
        """:func:`~medviewer.services.ai_runs.segment_volume` of ``ctx``'s lane, run in the
        child: same arguments, same result (a SegmentationRun), same errors (re-raised here
        with their own type when they can cross the pipe), ``Cancelled`` when ``ctx`` is."""
        with self._lock:
            self._spawn()
            self._wait_ready(ctx)
            folder = _scratch_dir()
            shape = tuple(volume.shape[:3])
            shared = {}
            try:
                src = _SharedArray(volume.array.shape, volume.array.dtype, folder)
                shared["input"] = src
                src.array[...] = volume.array
                shared["labels"] = _SharedArray(shape, np.uint8, folder)
                if keep_entropy:
                    shared["entropy"] = _SharedArray(shape, np.float16, folder)
                if method != "entropy":
                    shared["variance"] = _SharedArray(shape, np.float16, folder)
                lane = ctx.lane
                req = {"card": card, "volume": _fields_but_pixels(volume),
                       "input": src.spec(), "z": z, "method": method, "force": bool(force),
                       "keep_entropy": bool(keep_entropy),
                       "outputs": {k: v.spec() for k, v in shared.items() if k != "input"},
                       "preference": lane.preference, "threads": lane.threads,
                       "precision": lane.precision_preference}
                self._conn.send(("segment", req))
                run, have = self._follow(ctx)
                self.runs += 1
                return replace(run, **{k: shared[k].result() if have.get(k) else None
                                       for k in ("labels", "entropy", "variance")})
            finally:
                for arr in shared.values():
                    arr.release()

    def _follow(self, ctx):
        """Relay the child's messages until its run ends; returns (run, arrays written)."""
        cancelled_at = None
        while True:
            if cancelled_at is None and ctx.cancelled():
                self._cancel.send_bytes(b"x")
                cancelled_at = time.monotonic()
            if cancelled_at is not None and time.monotonic() - cancelled_at > CANCEL_GRACE_S:
                self._stop()  # stuck in a long step: a new child next time
                raise Cancelled()
            if not self._conn.poll(POLL_S):
                if not self.alive:
                    raise InferenceProcessError(self._died())
                continue
            msg = self._recv()
            kind = msg[0]
            if kind == "progress":
                if cancelled_at is None:
                    try:
                        ctx.progress(msg[1], msg[2], msg[3])
                    except Cancelled:
                        continue  # told to the child at the top of the loop
            elif kind == "device":
                ctx.lane.announce(msg[1], msg[2])
            elif kind == "done":
                return msg[1], msg[2]
            elif kind == "cancelled":
                raise Cancelled()
            elif kind == "error":
                _, blob, name, text, where = msg
                log.error("inference process: %s\n%s", name, where.rstrip())
                if isinstance(blob, BaseException):
                    raise blob
                raise InferenceProcessError(f"{name}: {text}")


def _fields_but_pixels(volume) -> tuple:
    """(class, every field of ``volume`` but its array): the pixels cross in shared memory."""
    return type(volume), {f.name: getattr(volume, f.name) for f in fields(volume)
                          if f.name != "array"}


_shared: Optional[InferenceProcess] = None
_shared_lock = threading.Lock()


def shared() -> InferenceProcess:
    """The app process's one inference child (not started until used)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = InferenceProcess()
        return _shared


if __name__ == "__main__":  # pragma: no cover - the child
    import sys

    sys.exit(_main(sys.argv[1:]))
