"""One SIGINT or SIGTERM ends a whole `factory` command that runs jobs in process, not only the run it
arrives in (see `SignalStop`)."""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
RESEND_S = 0.1  # a signal that came while a run was being set up is sent again after this


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived outside a run: unwinds at once, like KeyboardInterrupt (not an Exception)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class SignalStop:
    """One SIGINT or SIGTERM stops a whole loop of in-process runs, not only the run it arrives in.

    While a run executes, Dagster's own handlers replace ours: the signal becomes an interrupted run
    (failed, with the step that was running) and `execute_in_process` returns as if the day had merely
    failed. A wakeup fd sees every signal whichever Python handler takes it, so after each run the loop
    knows it must stop. Outside a run (loading the definitions, between days) the signal raises
    `Interrupted` at once; in the moments `execute_in_process` spends outside Dagster's handlers (creating
    the run, building its result) it is sent again RESEND_S later, so that it lands in the run. Used as a
    context manager on the main thread; elsewhere it does nothing.
    """

    _installed: SignalStop | None = None  # signal handlers are per process, so is the stop that holds them

    def __init__(self) -> None:
        self.signum: int | None = None
        self._in_run = False
        self._active = False
        self._previous: dict[int, Any] = {}
        self._wakeup_fd = -1
        self._sockets: tuple[socket.socket, socket.socket] | None = None
        self._outer: SignalStop | None = None

    def __enter__(self) -> SignalStop:
        if threading.current_thread() is not threading.main_thread():
            return self
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        self._sockets = (reader, writer)
        self._previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
        for s in STOP_SIGNALS:  # also when the parent left SIGINT ignored (a background job of a script)
            signal.signal(s, self._handle)
        self._wakeup_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        self._active = True
        self._outer, SignalStop._installed = SignalStop._installed, self
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._active:
            return
        self._drain()
        signal.set_wakeup_fd(self._wakeup_fd)
        for s, handler in self._previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        for sock in self._sockets or ():
            sock.close()
        self._active = False
        SignalStop._installed = self._outer

    @classmethod
    def current(cls) -> SignalStop:
        """The stop installed by the innermost `with SignalStop()` of this process, or one that never stops."""
        return cls._installed or cls()

    @property
    def stopped(self) -> bool:
        """Whether a stop signal has arrived (the first one's number is in `signum`)."""
        self._drain()
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    @contextmanager
    def running(self) -> Iterator[None]:
        """Around one `execute_in_process`: a signal arriving in it stops the loop after the run returns."""
        self._in_run = True
        try:
            yield
        finally:
            self._in_run = False
            self._drain()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = self.signum or signum
        if self._in_run:
            # `execute_in_process` is creating the run or building its result, outside Dagster's handlers.
            # Raising here could leave a run half made; send the signal again shortly instead: if the run is
            # executing by then, Dagster's handler takes it and interrupts the run at once.
            threading.Timer(RESEND_S, self._resend, (signum,)).start()
            return
        raise Interrupted(signum)

    def _resend(self, signum: int) -> None:
        if self._in_run:
            os.kill(os.getpid(), signum)

    def _drain(self) -> None:
        if not self._sockets:
            return
        try:
            while data := self._sockets[0].recv(64):
                for signum in data:
                    if signum in STOP_SIGNALS:
                        self.signum = self.signum or signum
        except (BlockingIOError, InterruptedError):
            pass
