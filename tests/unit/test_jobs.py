"""medviewer.jobs without Qt: the JobRunner's callbacks, errors, cancellation and progress,
and the one generator driver."""
import threading

import pytest

from medviewer.jobs import Cancelled, JobRunner, Reporter, Step, drive


@pytest.fixture
def runner():
    r = JobRunner(max_workers=2)
    yield r
    r.shutdown()


def _wait(event: threading.Event) -> None:
    assert event.wait(10), "the job did not finish"


def test_result_progress_and_events_arrive_in_order(runner):
    seen, events, finished = [], [], threading.Event()
    runner.attach(lambda fn: fn(), lambda ev, job, payload: (events.append(ev),
                                                            ev == "idle" and finished.set()))

    def work(reporter):
        for i in range(5):
            reporter(i + 1, 5, f"step {i + 1}")
        return threading.current_thread().name

    runner.submit(work, "w", on_done=seen.append, on_progress=lambda p: seen.append(p.done))
    _wait(finished)
    assert seen[-1].startswith("medviewer-io")  # ran on the pool
    assert 5 in seen[:-1]  # the last step is never throttled away
    assert events[0] == "started" and events[-2:] == ["ok", "idle"]
    assert not runner.busy


def test_errors_are_delivered_as_messages(runner):
    got, done = [], threading.Event()
    runner.submit(lambda r: 1 / 0, on_error=lambda m: (got.append(m), done.set()))
    _wait(done)
    assert got[0].startswith("ZeroDivisionError")


def test_a_failed_job_is_logged_with_where_it_failed_never_its_message(runner, caplog):
    """A message may quote a file's contents (a patient's name): the UI gets it, logs don't."""
    got, done = [], threading.Event()

    def work(reporter, value="^".join(("Qwerzy", "Haldorvinn"))):  # as if read from a file
        raise ValueError(f"unexpected person name {value!r}")

    with caplog.at_level("DEBUG"):
        runner.submit(work, "read", on_error=lambda m: (got.append(m), done.set()))
        _wait(done)
    assert "Qwerzy" in got[0]
    logged = "\n".join(r.getMessage() + str(r.exc_info or "") for r in caplog.records)
    assert "job read failed: ValueError" in logged and "in work" in logged
    assert "Qwerzy" not in logged


class _Panic(BaseException):
    """Like pyo3's PanicException (a Rust decoder's panic): a BaseException only."""


def test_a_panic_that_is_not_an_exception_still_ends_the_job_with_an_error(runner):
    got, done = [], threading.Event()

    def work(reporter):
        raise _Panic("index out of bounds")

    runner.submit(work, on_error=lambda m: (got.append(m), done.set()),
                  on_done=lambda r: (got.append("done"), done.set()))
    _wait(done)
    assert got == ["_Panic: index out of bounds"]
    assert not runner.busy  # nothing left spinning


def test_cancel_stops_a_cooperative_job_and_nothing_else_is_delivered(runner):
    started, done = threading.Event(), threading.Event()
    outcome = []

    def work(reporter):
        started.set()
        while True:
            reporter(0, 0, "waiting")

    job = runner.submit(work, on_done=outcome.append, on_cancelled=lambda: (outcome.append("c"),
                                                                            done.set()))
    _wait(started)
    job.cancel()
    _wait(done)
    assert outcome == ["c"]


def test_after_shutdown_nothing_runs():
    r = JobRunner(max_workers=1)
    r.shutdown()
    ran = []
    job = r.submit(lambda rep: ran.append(1))
    assert job.cancelled and ran == []


def _steps(n):
    for i in range(n):
        yield Step(i + 1, n, "" if i % 2 else f"step {i + 1}")
    return "result"


def test_drive_returns_the_result_and_reports_each_step():
    seen = []
    assert drive(_steps(4), lambda d, t, m: seen.append((d, t, m)), "default") == "result"
    assert seen == [(1, 4, "step 1"), (2, 4, "default"), (3, 4, "step 3"), (4, 4, "default")]


def test_drive_with_a_cancelled_reporter_closes_the_generator():
    closed = []

    def gen():
        try:
            yield Step(0, 2)
            yield Step(1, 2)
        finally:
            closed.append(True)

    rep = Reporter()
    rep.cancel.cancel()
    with pytest.raises(Cancelled):
        drive(gen(), rep)
    assert closed == [True]
