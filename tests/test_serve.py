# tests/test_serve.py
# streamrnn.serve (API.md, "Serving"): a server on a loopback port and its clients; concurrent
# streams against m.stream(1), open from a state or a snapshot, reset, refused frames and opens,
# oversized messages, clients that vanish, idle streams, the token, /metrics. Every wait is bounded.
# Part of streamrnn, MIT licence.
import asyncio
import base64
import contextlib
import json
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request

import numpy as np
import pytest

import streamrnn as sr
from conftest import assert_close, rng_for

pytest.importorskip("websockets")
from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from streamrnn.serve import (CLOSE_FULL, CLOSE_IDLE, CLOSE_TOKEN, CLOSE_TOO_BIG, AsyncClient, Client,  # noqa: E402
                             Server)

I, H = 4, 16
MODEL = sr.LSTM(I, H, num_layers=2, seed=0)
WAIT = 10.0  # seconds: the bound of every wait here


@contextlib.contextmanager
def running(**options):
    server = Server(MODEL, port=0, max_delay=0.001, **options).start()
    try:
        yield server
    finally:
        server.stop()
        assert not server._thread.is_alive(), "the server did not stop"


@pytest.fixture(scope="module")
def server():
    with running(max_streams=24) as s:
        yield s


def reference(xs, state=None):
    """What m.stream(1) gives for xs (T, I), from `state` (or the initial state)."""
    stream = MODEL.stream(1)
    if state is not None:
        stream.state = state
    return stream.process(np.asarray(xs, np.float32)[:, None])[:, 0], stream.state


def frames(rng, T):
    return rng.standard_normal((T, I)).astype(np.float32)


def metrics(server):
    """/metrics, parsed: name (without the prefix, with its labels) -> value."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{server.port}/metrics", timeout=WAIT) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {line.split()[0].removeprefix("streamrnn_serve_"): float(line.split()[1])
            for line in text.splitlines() if line and not line.startswith("#")}


def wait_until(condition, what):
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def raw(server):
    """A bare connection, opened: the protocol by hand."""
    ws = connect(server.url, compression=None, open_timeout=WAIT).__enter__()  # closed by the caller
    ws.send(json.dumps({"op": "open"}))
    assert json.loads(ws.recv(timeout=WAIT))["ok"] == "open"
    return ws


def assert_error(ws, kind="ValueError"):
    answer = json.loads(ws.recv(timeout=WAIT))
    assert set(answer) == {"error", "kind"} and answer["kind"] == kind and answer["error"], answer
    return answer["error"]


# ------------------------------------------------------------------------------------------------
# Streams


def test_concurrent_clients_each_get_what_one_stream_would(server):
    n_clients, T = 20, 200
    before = metrics(server)
    inputs = [frames(rng_for("serve concurrent", k), T) for k in range(n_clients)]
    outputs, errors = [None] * n_clients, []
    start = threading.Barrier(n_clients, timeout=WAIT)

    def client(k):
        rng = rng_for("serve chunks", k)
        try:
            with Client(server.url, timeout=WAIT) as c:
                start.wait()
                ys, t = [], 0
                while t < T:  # steps and blocks of steps, mixed
                    n = int(min(rng.integers(1, 9), T - t)) if rng.random() < 0.3 else 1
                    ys.append(c.step(inputs[k][t])[None] if n == 1 else c.process(inputs[k][t:t + n]))
                    t += n
                outputs[k] = np.concatenate(ys)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(n_clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not any(th.is_alive() for th in threads), "a client hung"
    assert not errors, errors
    for k in range(n_clients):
        assert outputs[k].shape == (T, H) and outputs[k].dtype == np.float32
        assert_close(outputs[k], reference(inputs[k])[0], what=f"client {k}")
    after = metrics(server)
    assert after["frames_total"] - before["frames_total"] == n_clients * T
    assert after["batch_size_mean"] > 1, "the clients' frames were never batched together"
    wait_until(lambda: len(server.pool) == 0, "the slots to be free")


def test_async_clients_each_get_what_one_stream_would(server):
    T = 60
    inputs = [frames(rng_for("serve async", k), T) for k in range(6)]

    async def client(xs):
        async with AsyncClient(server.url, timeout=WAIT) as c:
            ys = [await c.step(xs[t]) for t in range(T // 2)]
            return np.concatenate([np.stack(ys), await c.process(xs[T // 2:])])

    async def main():
        return await asyncio.wait_for(asyncio.gather(*(client(xs) for xs in inputs)), 30)

    for k, y in enumerate(asyncio.run(main())):
        assert_close(y, reference(inputs[k])[0], what=f"async client {k}")


def test_open_from_a_state_or_a_snapshot_reset_and_state(server):
    rng = rng_for("serve open")
    xs = frames(rng, 30)
    with Client(server.url, timeout=WAIT) as c:
        c.process(xs[:20])
        blob = c.snapshot()
        assert isinstance(blob, bytes) and len(blob) == server.pool.snapshot_size
        state = c.state()
        assert_close(state, reference(xs[:20])[1], what="state over the wire")
        pool = MODEL.pool(1)  # the blob is the pool's: a local pool of the same model reads it
        assert_close(pool.state(pool.restore(blob)), state, what="state of the restored snapshot")
        with Client(server.url, snapshot=blob, timeout=WAIT) as resumed:
            assert resumed.id != c.id
            assert_close(resumed.process(xs[20:]), reference(xs)[0][20:], what="stream opened from a snapshot")
        c.reset()
        zero = c.state()
        assert all(not np.any(v) for v in zero), "reset: not the initial state"
        assert_close(c.step(xs[0]), reference(xs[:1])[0][0], what="step after reset")
    st = tuple(v * 0.5 for v in reference(xs[:7])[1])
    with Client(server.url, state=st, timeout=WAIT) as c:
        assert_close(c.process(xs[7:]), reference(xs[7:], st)[0], what="stream opened from a state")


def test_pipelined_messages_are_answered_in_order_and_control_acts_after_the_frames_before_it(server):
    xs = frames(rng_for("serve pipelined"), 12)
    ws = raw(server)
    try:
        for x in xs[:5]:  # nothing read until everything is sent
            ws.send(x.tobytes())
        ws.send(xs[5:8].tobytes())
        for op in ("snapshot", "reset"):
            ws.send(json.dumps({"op": op}))
        ws.send(xs[8:].tobytes())
        ws.send(json.dumps({"op": "state"}))
        answers = [ws.recv(timeout=WAIT) for _ in range(10)]
    finally:
        ws.close()
    y = np.concatenate([np.frombuffer(a, "<f4").reshape(-1, H) for a in answers[:6]])
    assert_close(y, reference(xs[:8])[0], what="8 steps in 6 messages, pipelined")
    snapshot, reset = json.loads(answers[6]), json.loads(answers[7])
    pool = MODEL.pool(1)
    assert_close(pool.state(pool.restore(base64.b64decode(snapshot["snapshot"]))), reference(xs[:8])[1],
                 what="snapshot after the frames sent before it")
    assert reset == {"ok": "reset"}
    assert_close(np.frombuffer(answers[8], "<f4").reshape(4, H), reference(xs[8:])[0], what="steps after reset")
    state = json.loads(answers[9])["state"]
    assert_close((np.array(state["h"], np.float32), np.array(state["c"], np.float32)), reference(xs[8:])[1],
                 what="state after them")


def test_a_stopping_server_ends_its_streams():
    with running(max_streams=2) as server:
        c = Client(server.url, timeout=WAIT)
        c.step(np.zeros(I, np.float32))
    with pytest.raises(ConnectionError, match="1001"):
        c.step(np.zeros(I, np.float32))
    c.close()


def test_bad_opens_are_refused_with_value_error_and_open_nothing(server):
    other = sr.LSTM(I, H, num_layers=2, seed=1).pool(1)
    other_blob = other.snapshot(other.open())
    n = len(server.pool)
    bad = {"state of another shape": dict(state=(np.zeros((1, 1, H), np.float32),) * 2),
           "state that is no LSTM state": dict(state=np.zeros((2, 1, H), np.float32)),
           "bytes that are no snapshot": dict(snapshot=b"junk"),
           "snapshot of other weights": dict(snapshot=other_blob)}
    for what, options in bad.items():
        with pytest.raises((ValueError, TypeError)):  # what pool.open and pool.restore raise
            Client(server.url, timeout=WAIT, **options)
        assert len(server.pool) == n, f"{what}: opened a stream"
    with pytest.raises(ValueError):
        Client(server.url, state=np.zeros((2, 1, H)), snapshot=b"", timeout=WAIT)


# ------------------------------------------------------------------------------------------------
# Refused messages


def test_refused_frames_and_messages_answer_an_error_and_change_nothing(server):
    rng = rng_for("serve refused")
    xs = frames(rng, 6)
    nan = xs[0].copy()
    nan[1] = np.nan
    inf = xs[0].copy()
    inf[2] = np.inf
    bad = [b"", b"\x00" * 3, xs[0].astype("<f8").tobytes()[:4 * (I + 1)], xs[:2].tobytes()[:-4],
           nan.tobytes(), inf.tobytes(), "not json", "[1, 2]", json.dumps({"op": "fly"}),
           json.dumps({"op": "open"}), json.dumps({"no": "op"})]
    ws = raw(server)
    try:
        ys = []
        for k, x in enumerate(xs):
            ws.send(x.tobytes())
            ys.append(np.frombuffer(ws.recv(timeout=WAIT), "<f4"))
            ws.send(bad[k % len(bad)] if k < len(xs) - 1 else bad[-1])
            assert_error(ws)
        for message in bad:  # every one, and all at once: each answered in order
            ws.send(message)
        for _ in bad:
            assert_error(ws)
        assert_close(np.stack(ys), reference(xs)[0], what="frames around refused ones")
    finally:
        ws.close()
    with Client(server.url, timeout=WAIT) as c:
        with pytest.raises(ValueError, match="non-finite"):  # the server's message
            c.step(nan)
        with pytest.raises(ValueError):  # refused by the client itself: (I,) expected
            c.step(xs[:2])
        with pytest.raises(ValueError):
            c.process(xs[0])
        assert_close(c.process(xs), reference(xs)[0], what="a client's frames after refused ones")


def test_oversized_messages_are_refused_then_too_big_ones_close_only_that_stream():
    with running(max_streams=4, max_frames=8) as server:
        rng = rng_for("serve oversized")
        xs = frames(rng, 20)
        with Client(server.url, timeout=WAIT) as bystander:
            ws = raw(server)
            ws.send(xs[:9].tobytes())  # 9 steps, 8 taken: an error message, the stream goes on
            assert "at most 8" in assert_error(ws)
            ws.send(xs[:8].tobytes())
            assert_close(np.frombuffer(ws.recv(timeout=WAIT), "<f4").reshape(8, H), reference(xs[:8])[0],
                         what="8 steps after 9 refused")
            ws.send(np.zeros(server.max_message_bytes + 16, np.uint8).tobytes())  # past websockets' limit
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=WAIT)
            assert info.value.sent is not None and info.value.sent.code == CLOSE_TOO_BIG
            ws.close()
            wait_until(lambda: len(server.pool) == 1, "the closed stream's slot to be free")
            assert_close(bystander.process(xs), reference(xs)[0], what="a bystander (long xs, in chunks of 8)")
        assert metrics(server)["too_big_total"] == 1


# ------------------------------------------------------------------------------------------------
# Slots: a full server, clients that vanish, idle streams


def test_a_full_server_refuses_new_streams_until_a_slot_is_free():
    with running(max_streams=2) as server:
        a, b = Client(server.url, timeout=WAIT), Client(server.url, timeout=WAIT)
        with pytest.raises(ConnectionRefusedError) as info:
            Client(server.url, timeout=WAIT)
        assert info.value.code == CLOSE_FULL and "full" in str(info.value)
        a.close()
        with Client(server.url, timeout=WAIT) as c:  # a's slot is free once close() returned
            c.step(np.zeros(I, np.float32))
        b.close()
        assert metrics(server)["refused_full_total"] == 1


VANISHING = textwrap.dedent("""
    import json, sys
    import numpy as np
    from websockets.sync.client import connect
    with connect(sys.argv[1], compression=None) as ws:
        ws.send(json.dumps({"op": "open"}))
        ws.recv(timeout=10)
        x = np.ones(int(sys.argv[2]), "<f4").tobytes()
        for n in range(100000):
            ws.send(x)
            ws.recv(timeout=10)
            if n == 10:
                print("streaming", flush=True)
""")


def test_clients_that_vanish_mid_stream_free_their_slots():
    with running(max_streams=2) as server:
        with subprocess.Popen([sys.executable, "-c", VANISHING, server.url, str(I)], stdout=subprocess.PIPE,
                              text=True) as process:
            try:
                assert process.stdout.readline().strip() == "streaming"
                ws = raw(server)
                ws.send(np.ones(I, "<f4").tobytes())  # frames in flight when it vanishes
                ws.send(np.ones((3, I), "<f4").tobytes())
                assert len(server.pool) == 2
                ws.socket.shutdown(socket.SHUT_RDWR)  # no close frame: the network is gone
                process.send_signal(signal.SIGKILL)
            finally:
                if process.poll() is None:
                    process.kill()
                process.wait(timeout=WAIT)
        wait_until(lambda: len(server.pool) == 0, "the vanished clients' slots to be free")
        ws.close()
        with Client(server.url, timeout=WAIT) as a, Client(server.url, timeout=WAIT) as b:
            xs = frames(rng_for("serve after vanished"), 5)
            assert_close(a.process(xs), reference(xs)[0], what="a stream after the vanished ones")
            assert_close(b.process(xs), reference(xs)[0], what="another")
        assert metrics(server)["dropped_total"] == 2


def test_idle_streams_are_closed_with_their_snapshot_and_go_on_when_reopened():
    with running(max_streams=2, idle_timeout=0.3) as server:
        xs = frames(rng_for("serve idle"), 20)
        with Client(server.url, timeout=WAIT) as c:
            first = c.id
            y = [c.process(xs[:10])]
            wait_until(lambda: len(server.pool) == 0, "the idle stream to be closed")
            y.append(c.process(xs[10:]))  # reopened from the snapshot the server sent
            assert c.id != first
            assert_close(np.concatenate(y), reference(xs)[0], what="a stream across an idle close")
        ws = raw(server)
        ws.send(xs[:3].tobytes())
        ws.recv(timeout=WAIT)
        event = json.loads(ws.recv(timeout=WAIT))  # nothing sent: the idle event comes by itself
        assert event["event"] == "idle"
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=WAIT)
        assert info.value.rcvd.code == CLOSE_IDLE
        pool = MODEL.pool(1)
        blob = base64.b64decode(event["snapshot"])
        assert_close(pool.state(pool.restore(blob)), reference(xs[:3])[1], what="the idle stream's snapshot")
        assert metrics(server)["idle_closed_total"] == 2


def test_the_token_is_checked_at_open():
    with running(max_streams=2, token="s3cret") as server:
        for token in (None, "wrong", ""):
            with pytest.raises(ConnectionRefusedError) as info:
                Client(server.url, token=token, timeout=WAIT)
            assert info.value.code == CLOSE_TOKEN
        with Client(server.url, token="s3cret", timeout=WAIT) as c:
            c.step(np.zeros(I, np.float32))
        assert metrics(server)["refused_token_total"] == 3


# ------------------------------------------------------------------------------------------------
# Health, metrics, construction


def test_metrics_and_status_report_streams_frames_batches_and_latency():
    with running(max_streams=3) as server:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{server.port}/health", timeout=WAIT) as response:
            assert response.read() == b"ok\n"
        with Client(server.url, timeout=WAIT) as a, Client(server.url, timeout=WAIT) as b:
            xs = frames(rng_for("serve metrics"), 12)
            a.process(xs)
            for x in xs[:5]:
                b.step(x)
            m = metrics(server)
            status = b.status()
        assert m["open_streams"] == 2 and m["capacity"] == 3 and m["connections"] == 2
        assert m["frames_total"] == 17 and m["messages_total"] == 6 and m["batches_total"] >= 12
        assert m["frames_per_second"] > 0 and m["batch_size_mean"] >= 1
        assert 0 < m['latency_seconds{quantile="0.5"}'] <= m['latency_seconds{quantile="0.99"}'] < WAIT
        assert m["latency_seconds_count"] == 6
        assert status["frames_total"] == 17 and status["open_streams"] == 2
        assert set(status["latency_seconds"]) == {"0.5", "0.9", "0.99"}
        wait_until(lambda: metrics(server)["open_streams"] == 0, "open_streams to be 0")


def test_a_server_needs_a_pooled_model_and_sane_options():
    with pytest.raises(TypeError):
        Server(sr.Sequential(sr.Linear(3, 4), sr.GRU(4, 2)))
    with pytest.raises(ValueError):
        Server(sr.LSTM(3, 4, bidirectional=True))
    for bad in (dict(max_streams=0), dict(max_batch=5, max_streams=4), dict(max_delay=-1.0), dict(idle_timeout=0),
                dict(max_frames=0), dict(port=70000)):
        with pytest.raises(ValueError):
            Server(MODEL, **bad)
