# tests/test_threads.py
# The threading contract (README, "Threads"): what may overlap on one model, what is for one thread
# at a time and is refused with a RuntimeError naming both calls, and weights that change while
# streams and whole-sequence calls run. Part of streamrnn, MIT licence.
import threading
import time

import numpy as np

import streamrnn as sr


def _run_until(flag, work):
    while not flag.is_set():
        work()


def _weights(m, seed):
    rng = np.random.default_rng(seed)
    return {k: (rng.standard_normal(v.shape) * 0.3).astype(np.float32) for k, v in m.state_dict().items()}


def test_weights_loaded_while_a_stream_processes_are_seen_whole():
    # R1: each process() call reads one version of the weights, all of A or all of B, never a mix,
    # and the last version loaded is the one every later call sees.
    m = sr.LSTM(32, 256, num_layers=2, seed=0)
    a, b = _weights(m, 1), _weights(m, 2)
    x = np.random.default_rng(3).standard_normal((8, 4, 32)).astype(np.float32)
    outputs = {}
    for name, weights in (("a", a), ("b", b)):
        m.load_state_dict(weights)
        outputs[name] = m.stream(4).process(x)
    assert not np.array_equal(outputs["a"], outputs["b"])
    s = m.stream(4)
    seen, done = [], threading.Event()

    def stream_loop():
        s.reset()
        seen.append(s.process(x))

    reader = threading.Thread(target=_run_until, args=(done, stream_loop))
    reader.start()
    try:
        i = 0
        while i < 300 or len(seen) < 5:  # however the threads are scheduled, loads among the calls
            m.load_state_dict(a if i % 2 else b)
            i += 1
    finally:
        done.set()
        reader.join()
    m.load_state_dict(a)
    s.reset()
    seen.append(s.process(x))
    assert len(seen) > 1
    for y in seen:
        assert np.array_equal(y, outputs["a"]) or np.array_equal(y, outputs["b"])
    assert np.array_equal(seen[-1], outputs["a"])


def test_weights_loaded_while_whole_sequence_calls_run_are_seen_whole():
    m = sr.GRU(16, 128, num_layers=2, seed=0)
    a, b = _weights(m, 4), _weights(m, 5)
    x = np.random.default_rng(6).standard_normal((20, 3, 16)).astype(np.float32)
    expected = []
    for weights in (a, b):
        m.load_state_dict(weights)
        expected.append(m(x)[0])
    seen, done = [], threading.Event()
    reader = threading.Thread(target=_run_until, args=(done, lambda: seen.append(m(x)[0])))
    reader.start()
    try:
        i = 0
        while i < 200 or len(seen) < 5:
            m.load_state_dict(a if i % 2 else b)
            i += 1
    finally:
        done.set()
        reader.join()
    for y in seen:
        assert any(np.array_equal(y, e) for e in expected)


def _overlap(first, second, seconds=30.0):
    """Runs first() on a thread and second() on this one, again and again, until one of them raises
    RuntimeError because the other holds what it needs; returns that error (None if they never
    overlapped in `seconds`)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        errors = []

        def run_first():
            try:
                first()
            except RuntimeError as error:
                errors.append(error)

        thread = threading.Thread(target=run_first)
        thread.start()
        time.sleep(0.0005)  # mostly, first() is inside its call by now
        try:
            second()
        except RuntimeError as error:
            errors.append(error)
        thread.join()
        if errors:
            return errors[0]
    return None


def test_a_stream_used_by_two_threads_at_once_refuses_the_second_naming_both():
    m = sr.LSTM(64, 512, num_layers=2, seed=0)
    s = m.stream(8)
    x = np.zeros((200, 8, 64), np.float32)
    error = _overlap(lambda: s.process(x), lambda: s.state)
    assert error is not None, "the calls never overlapped"
    assert "state" in str(error) and "process" in str(error)
    # The refused call changed nothing: the stream goes on as if it had not been made.
    s.reset()
    y = s.process(x[:5])
    assert np.array_equal(y, m.stream(8).process(x[:5]))


def test_two_threads_stepping_one_stream_never_tear_its_state():
    # Every step either runs whole or is refused; the state is that of as many whole steps.
    m = sr.RNN(8, 256, num_layers=2, seed=0)
    s = m.stream(16)
    x = np.full((1, 16, 8), 0.25, np.float32)
    ran = [0, 0]

    def loop(k):
        for _ in range(300):
            try:
                s.process(x)
                ran[k] += 1
            except RuntimeError as error:
                assert "process" in str(error)

    threads = [threading.Thread(target=loop, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reference = m.stream(16)
    for _ in range(sum(ran)):
        reference.process(x)
    np.testing.assert_array_equal(s.state, reference.state)


def test_a_training_forward_and_a_backward_on_two_threads_refuse_the_later_naming_both():
    m = sr.LSTM(64, 256, num_layers=2, seed=0)
    x = np.zeros((400, 16, 64), np.float32)
    y, _ = m(x, train=True)
    dy = np.ones_like(y)
    error = _overlap(lambda: m(x, train=True), lambda: m.backward(dy))
    assert error is not None, "the calls never overlapped"
    assert "backward" in str(error) and "forward(train=True)" in str(error)


def test_a_backward_refuses_a_record_that_another_thread_replaced():
    # B3: the record another thread's training forward leaves is of other sizes than dy's; the
    # backward is refused (RuntimeError), or runs on a record of its own sizes, never past its arrays.
    m = sr.GRU(32, 128, seed=0)
    small, large = np.zeros((10, 2, 32), np.float32), np.zeros((300, 24, 32), np.float32)
    m(small, train=True)
    done = threading.Event()

    def trainer():
        while not done.is_set():
            for x in (large, small):
                try:
                    m(x, train=True)
                except RuntimeError:
                    pass  # the backward holds the record: refused from this side, and the loop goes on

    thread = threading.Thread(target=trainer)
    thread.start()
    refused = 0
    try:
        deadline = time.monotonic() + 20
        while refused < 3 and time.monotonic() < deadline:
            try:
                dx, _ = m.backward(np.zeros((10, 2, 128), np.float32))
                assert dx.shape == (10, 2, 32)
            except (RuntimeError, ValueError):
                refused += 1  # another call holds the record, or it has other sizes than dy
    finally:
        done.set()
        thread.join()
    assert refused > 0


def test_whole_sequence_calls_from_several_threads_share_a_model():
    m = sr.LSTM(16, 64, num_layers=2, seed=0)
    x = np.random.default_rng(0).standard_normal((50, 4, 16)).astype(np.float32)
    expected = m(x)[0]
    results = []
    threads = [threading.Thread(target=lambda: results.append(m(x)[0])) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for y in results:
        assert np.array_equal(y, expected)


def test_an_optimizer_step_while_a_stream_steps_publishes_whole_weights():
    m = sr.LSTM(8, 128, seed=0)
    opt = sr.optim.SGD(m, lr=0.1)
    x = np.random.default_rng(1).standard_normal((30, 2, 8)).astype(np.float32)
    y, _ = m(x, train=True)
    m.backward(np.ones_like(y))
    s = m.stream(2)
    outputs, done = [], threading.Event()
    versions = [m.state_dict()]

    def stream_loop():
        s.reset()
        outputs.append(s.process(x))

    reader = threading.Thread(target=_run_until, args=(done, stream_loop))
    reader.start()
    try:
        while len(versions) < 21 or len(outputs) < 5:
            opt.step()
            versions.append(m.state_dict())
    finally:
        done.set()
        reader.join()
    expected = []
    for weights in versions:
        m.load_state_dict(weights)
        expected.append(m.stream(2).process(x))
    for out in outputs:
        assert any(np.array_equal(out, e) for e in expected)


def test_gradients_in_use_refuse_a_second_call_naming_both():
    m = sr.LSTM(64, 256, num_layers=2, seed=0)
    x = np.zeros((300, 16, 64), np.float32)
    y, _ = m(x, train=True)
    dy = np.ones_like(y)
    error = _overlap(lambda: m.backward(dy), m.zero_grad)
    assert error is not None, "the calls never overlapped"
    assert "zero_grad" in str(error) and "backward" in str(error)


def test_set_num_threads_is_safe_to_call_while_calls_run():
    m = sr.GRU(8, 32, seed=0)
    x = np.zeros((40, 8, 8), np.float32)
    expected = m(x)[0]
    done = threading.Event()
    results = []
    thread = threading.Thread(target=_run_until, args=(done, lambda: results.append(m(x)[0])))
    thread.start()
    try:
        for n in (1, 2, 1, 2, 1):
            sr.set_num_threads(n)
    finally:
        done.set()
        thread.join()
        sr.set_num_threads(1)
    for y in results:
        np.testing.assert_allclose(y, expected, atol=1e-6)
