"""What to start next: a pure choice over the waiting and the active runs.

Today the rule is job slots and submission order; priority, per-spider
limits and overlap rules join here, tested without a reactor, and the
controller only applies the answer.
"""


def next_to_start(pending, active, slots):
    """The runs to start now: the oldest `pending` ones (oldest first) not already `active`, up to the free slots.

    `active` holds the identifiers of runs that occupy a slot (launching or running).
    """
    free = slots - len(active)
    if free <= 0:
        return []
    chosen = []
    for run in pending:
        if run.identifier not in active:
            chosen.append(run)
            if len(chosen) == free:
                break
    return chosen
