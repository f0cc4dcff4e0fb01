"""Unit tests for scrapy_do.heap: the heap is settled after a push, once per burst, on a Clock."""

from twisted.internet.task import Clock

from scrapy_do import heap
from scrapy_do.events import JobRemoved, ProjectPushed, ProjectRemoved
from tests.unit.test_store import make_project


def test_a_push_settles_the_heap_once_its_answer_has_gone_and_a_burst_settles_it_once():
    clock, calls = Clock(), []
    listener = heap.SettleAfterPush(clock, settle=lambda: calls.append(clock.seconds()))
    listener(ProjectPushed(make_project("a")))
    listener(ProjectPushed(make_project("b")))
    assert calls == []  # not within the push's own reactor turn
    clock.advance(heap.AFTER_PUSH)
    assert calls == [heap.AFTER_PUSH]
    listener(ProjectPushed(make_project("a")))
    clock.advance(heap.AFTER_PUSH)
    assert len(calls) == 2


def test_other_events_leave_the_heap_alone():
    clock, calls = Clock(), []
    listener = heap.SettleAfterPush(clock, settle=lambda: calls.append(1))
    listener(ProjectRemoved(make_project("a")))
    listener(JobRemoved("x"))
    clock.advance(10)
    assert calls == [] and clock.getDelayedCalls() == []
