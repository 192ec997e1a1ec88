"""adasr.interrupts: SIGTERM / SIGHUP become KeyboardInterrupts with the shell's exit statuses; handlers restored."""

import os
import signal
import time

import pytest

from adasr.interrupts import Terminated, describe, exit_status, ignore_further, signals_interrupt


def test_exit_statuses_are_128_plus_the_signal():
    assert exit_status(KeyboardInterrupt()) == 130
    assert exit_status(Terminated(signal.SIGTERM)) == 143
    assert exit_status(Terminated(signal.SIGHUP)) == 129
    assert describe(KeyboardInterrupt()) == "interrupted"
    assert describe(Terminated(signal.SIGTERM)) == "terminated (SIGTERM)"
    assert describe(Terminated(signal.SIGHUP)) == "hung up (SIGHUP)"
    assert isinstance(Terminated(signal.SIGTERM), KeyboardInterrupt)  # Ctrl-C's clean-up paths catch it


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_inside_the_block_raises_terminated_and_handlers_come_back(sig, signals_not_ignored):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    with pytest.raises(Terminated) as info:
        with signals_interrupt():
            os.kill(os.getpid(), sig)
            time.sleep(30)
    assert info.value.signum == sig
    assert {s: signal.getsignal(s) for s in before} == before


def test_ignored_signals_stay_ignored_and_ignore_further_is_undone():
    sigint, sigterm = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with signals_interrupt():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN
            ignore_further()
            assert all(signal.getsignal(s) is signal.SIG_IGN for s in (signal.SIGINT, signal.SIGTERM))
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == (sigint, sigterm)
    finally:
        signal.signal(signal.SIGHUP, before)
