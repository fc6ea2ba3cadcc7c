"""node/heap_trim.py: the node's periodic malloc_trim."""

import platform

import pytest
import trio
import trio.testing

from node import heap_trim


def test_the_loop_trims_every_interval(monkeypatch):
    calls = []
    monkeypatch.setattr(heap_trim, "_malloc_trim", lambda: calls.append)

    async def main():
        with trio.move_on_after(95):
            await heap_trim.trim_loop(30.0)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert calls == [0, 0, 0]


def test_without_malloc_trim_the_loop_returns_at_once(monkeypatch):
    monkeypatch.setattr(heap_trim, "_malloc_trim", lambda: None)
    trio.run(heap_trim.trim_loop, 0.01)   # would never return if it looped
    assert heap_trim.trim_now() is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_glibc_heap_is_trimmed():
    assert heap_trim.trim_now() is True


def test_tune_malloc_sets_the_arenas_and_the_mmap_threshold(monkeypatch):
    calls = []
    monkeypatch.setattr(heap_trim, "_mallopt", lambda: lambda p, v: calls.append((p, v)) or 1)
    assert heap_trim.tune_malloc(environ={}) is True
    assert calls == [(-8, heap_trim.MALLOC_ARENAS), (-3, heap_trim.MMAP_THRESHOLD_BYTES)]


@pytest.mark.parametrize("name", heap_trim.OWN_SETTINGS)
def test_tune_malloc_leaves_an_operators_own_setting_alone(monkeypatch, name):
    calls = []
    monkeypatch.setattr(heap_trim, "_mallopt", lambda: lambda p, v: calls.append((p, v)) or 1)
    assert heap_trim.tune_malloc(environ={name: "4"}) is False and calls == []


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_accepts_the_malloc_settings():
    assert heap_trim.tune_malloc(environ={}) is True
