"""What to start next: a pure choice over the waiting and the active runs.

The store hands over the pending runs in queue order (highest priority,
then oldest); this picks what fills the free slots, keeping each (project,
spider) under its cap. The controller only applies the answer.
"""

from collections import Counter


def next_to_start(pending, active, slots, per_spider=0, running=None):
    """The runs to start now: the first `pending` ones not already `active`, up to the free slots.

    `active` holds the identifiers of runs that occupy a slot (launching or
    running); `running` counts them by (project, spider). With `per_spider`
    (0: no cap), a spider at its cap is passed over, so it never blocks the
    jobs of other spiders behind it.
    """
    free = slots - len(active)
    if free <= 0:
        return []
    busy = Counter(running or ())
    chosen = []
    for run in pending:
        if run.identifier in active:
            continue
        key = (run.project, run.spider)
        if per_spider and busy[key] >= per_spider:
            continue
        busy[key] += 1
        chosen.append(run)
        if len(chosen) == free:
            break
    return chosen


def saturated(running, per_spider):
    """The (project, spider) pairs at their cap: the store need not hand over their pending runs."""
    if not per_spider:
        return set()
    return {key for key, count in Counter(running).items() if count >= per_spider}
