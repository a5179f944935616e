"""The mail budget is one for every sender: concurrent takers on the embedded DynamoDB never get
more tokens than a window holds, and the ring of counters does not grow."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from chalicelib.store.limits import PACE_SLOTS

WINDOW = 1_800_000_000


def test_concurrent_senders_share_one_budget_per_window(served):
    limits = served.stores.limits

    def take(n: int) -> int:
        return limits.spend("mail", WINDOW + n % 2, 25)  # two windows at once, as at a second's edge

    with ThreadPoolExecutor(max_workers=8) as pool:
        taken = list(pool.map(take, range(120)))
    for window in (taken[0::2], taken[1::2]):  # each token given once, numbered 1 to 25
        assert sorted(given for given in window if given) == list(range(1, 26))


def test_participant_mail_stops_at_its_share_while_urgent_mail_goes_on(served):
    limits = served.stores.limits
    assert [limits.spend("mail", WINDOW, 3) for _ in range(4)] == [1, 2, 3, 0]  # bulk: 3
    assert [limits.spend("mail", WINDOW, 5) for _ in range(3)] == [4, 5, 0]  # urgent: 5 in all
    assert limits.spend("mail", WINDOW + 1, 3)  # the next window starts afresh


def test_the_counters_are_a_fixed_ring(served):
    limits = served.stores.limits
    for second in range(WINDOW, WINDOW + 3 * PACE_SLOTS):
        assert limits.spend("mail", second, 5)
    assert not limits.spend("mail", WINDOW, 5)  # a window long gone is never reopened
    assert sum(1 for item in served.stores.tables.nonces.scan() if item.nonce.startswith("pace:")) == PACE_SLOTS
