"""The simulated clock: events in time, then priority, then scheduling order; the world advanced before each."""

from __future__ import annotations

import pytest

from sim.engine import LIFECYCLE, POLL, SCRAPE, Engine


def test_events_run_in_time_then_priority_then_insertion_order():
    engine, seen = Engine(), []
    engine.at(5.0, POLL, lambda: seen.append(("poll", engine.now_s)))
    engine.at(5.0, SCRAPE, lambda: seen.append(("scrape", engine.now_s)))
    engine.at(5.0, LIFECYCLE, lambda: seen.append(("ready-a", engine.now_s)))
    engine.at(5.0, LIFECYCLE, lambda: seen.append(("ready-b", engine.now_s)))
    engine.at(1.0, POLL, lambda: seen.append(("early", engine.now_s)))
    advanced = []
    engine.run(10.0, advanced.append)
    assert seen == [("early", 1.0), ("ready-a", 5.0), ("ready-b", 5.0), ("scrape", 5.0), ("poll", 5.0)]
    assert advanced == [1.0, 5.0, 5.0, 5.0, 5.0, 10.0]
    assert engine.now_s == 10.0


@pytest.mark.parametrize("interval_s, until_s, count", [(5.0, 60.0, 13), (0.1, 1.0, 11), (2.0, 1.0, 1)],
                         ids=["polls", "fine-ticks-without-drift", "one-tick"])
def test_every_repeats_on_exact_multiples(interval_s, until_s, count):
    engine, times = Engine(), []
    engine.every(interval_s, SCRAPE, lambda: times.append(engine.now_s), until_s=until_s)
    engine.run(until_s, lambda t: None)
    assert times == pytest.approx([k * interval_s for k in range(count)])


def test_an_event_in_the_past_is_refused():
    engine = Engine()
    engine.run(3.0, lambda t: None)
    with pytest.raises(ValueError, match="before now"):
        engine.at(2.0, POLL, lambda: None)
