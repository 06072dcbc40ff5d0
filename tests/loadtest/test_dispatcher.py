"""The open-loop dispatcher keeps its schedule whatever the server does (no coordinated omission)."""
import gevent
import pytest

from sparse24.loadtest.dispatcher import OpenLoopDispatcher


def _slow_server(service_s):
    """A request function standing in for a server that takes service_s per request (no network)."""
    def send(sample, now):
        sample.sent_s = now()
        gevent.sleep(service_s)
        sample.status, sample.chunk_times_s, sample.output_tokens = 200, [now()], 1
    return send


def _max_in_flight(samples):
    events = sorted([(s.sent_s, 1) for s in samples] + [(s.finished_s, -1) for s in samples])
    level = peak = 0
    for _, d in events:
        level += d
        peak = max(peak, level)
    return peak


def test_every_arrival_is_sent_in_order_even_when_responses_are_slower_than_arrivals():
    schedule = [i * 0.02 for i in range(20)]  # 50 req/s for 0.4 s against 0.5 s responses
    samples = OpenLoopDispatcher(schedule, _slow_server(0.5), max_in_flight=64).run()
    assert [s.scheduled_s for s in samples] == schedule
    assert all(s.success for s in samples)
    sent = [s.sent_s for s in samples]
    assert sent == sorted(sent) and all(s.sent_s >= s.scheduled_s for s in samples)
    # a closed-loop user would hold one request at a time; open loop has them all in flight together
    assert _max_in_flight(samples) == 20


def test_in_flight_limit_fails_arrivals_instead_of_delaying_them():
    samples = OpenLoopDispatcher([0.0] * 5, _slow_server(0.3), max_in_flight=2).run()
    refused = [s for s in samples if "in-flight limit" in s.error]
    assert len(refused) == 3 and all(s.sent_s is None for s in refused)
    assert sum(s.success for s in samples) == 2


def test_requests_still_running_after_the_drain_timeout_are_abandoned_not_awaited():
    samples = OpenLoopDispatcher([0.0, 0.01], _slow_server(30.0), drain_timeout_s=0.2).run()
    assert all(s.error == "abandoned after drain" and s.finished_s is None for s in samples)


def test_client_exceptions_become_failed_samples():
    def boom(sample, now):
        sample.sent_s = now()
        raise ConnectionRefusedError("no server")

    done = []
    samples = OpenLoopDispatcher([0.0], boom, on_done=done.append).run()
    assert "ConnectionRefusedError" in samples[0].error and done == samples


def test_bad_limits_are_named():
    with pytest.raises(ValueError, match="max_in_flight"):
        OpenLoopDispatcher([0.0], _slow_server(0), max_in_flight=0)
