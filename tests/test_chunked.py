# tests/test_chunked.py
# Bidirectional models in latency-controlled chunks (API.md, "Bidirectional streaming"):
# m(x, chunk=Nc, lookahead=Nr) against an independent reference written with PyTorch's own
# one-direction modules, over random (Nc, Nr), lengths, layouts and unbatched input.
# Part of streamrnn, MIT licence.
import numpy as np
import pytest
import torch

import streamrnn as sr
from conftest import assert_close, make_sr, randn, rng_for

# (kind, constructor arguments)
CASES = {
    "LSTM": ("LSTM", dict(input_size=4, hidden_size=5, num_layers=2, bidirectional=True)),
    "LSTM-proj": ("LSTM", dict(input_size=4, hidden_size=6, num_layers=2, bidirectional=True, proj_size=3)),
    "GRU": ("GRU", dict(input_size=3, hidden_size=5, num_layers=3, bidirectional=True)),
    "RNN-relu": ("RNN", dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True, nonlinearity="relu")),
    "GRU-residual": ("GRU", dict(input_size=8, hidden_size=4, num_layers=3, bidirectional=True, residual=True)),
}


def one_direction(kind, cfg, weights, layer, suffix):
    """PyTorch's module of one direction of one layer, with the model's weights."""
    H, P = cfg["hidden_size"], cfg.get("proj_size", 0)
    D = 2
    I = cfg["input_size"] if layer == 0 else D * (P or H)
    args = dict(input_size=I, hidden_size=H, batch_first=False)
    if kind == "LSTM" and P:
        args["proj_size"] = P
    if kind == "RNN":
        args["nonlinearity"] = cfg.get("nonlinearity", "tanh")
    module = getattr(torch.nn, kind)(**args)
    names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"] + (["weight_hr"] if P else [])
    module.load_state_dict({f"{n}_l0": torch.from_numpy(weights[f"{n}_l{layer}{suffix}"]) for n in names})
    return module.eval()


def lc_graph(kind, cfg, modules, x, chunk, lookahead, h0=None):
    """Latency-controlled forward of one sequence x (a tensor (T, I)) with PyTorch modules: per chunk
    and layer, the forward direction carries its state over the chunk and runs the look-ahead from
    the chunk's end state; the reverse direction runs from zeros back from the window's last step.
    Returns y (T, D*H_out) and per layer the forward directions' final state and the reverse
    directions' at the end of their last run, all as autograd sees them."""
    forward, reverse = modules
    L = cfg["num_layers"]
    residual = cfg.get("residual", False)
    state = [None] * L if h0 is None else list(h0)
    reverse_state = [None] * L
    T, outputs = x.shape[0], []
    for start in range(0, T, chunk):
        end, window_end = min(T, start + chunk), min(T, start + chunk + lookahead)
        inp = x[start:window_end]
        for l in range(L):
            C = end - start
            y_chunk, state[l] = forward[l](inp[:C], state[l])
            parts = [y_chunk]
            if window_end > end:
                parts.append(forward[l](inp[C:], state[l])[0])
            y_back, reverse_state[l] = reverse[l](torch.flip(inp, [0]))
            out = torch.cat([torch.cat(parts), torch.flip(y_back, [0])], dim=-1)
            if residual and out.shape[-1] == inp.shape[-1]:
                out = out + inp
            inp = out
        outputs.append(inp[: end - start])
    return torch.cat(outputs), state, reverse_state


def modules_of(kind, cfg, weights):
    L = cfg["num_layers"]
    return ([one_direction(kind, cfg, weights, l, "") for l in range(L)],
            [one_direction(kind, cfg, weights, l, "_reverse") for l in range(L)])


def lc_reference(kind, cfg, weights, x, chunk, lookahead, h0=None):
    """lc_graph on NumPy x (T, I), without gradients: y and the forward directions' final states."""
    with torch.no_grad():
        y, state, _ = lc_graph(kind, cfg, modules_of(kind, cfg, weights), torch.from_numpy(x), chunk, lookahead, h0)
    return y.numpy(), state


def model(case, seed=0):
    kind, cfg = CASES[case]
    return kind, cfg, make_sr(kind, cfg, seed=seed)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("chunk, lookahead, T", [(1, 0, 7), (1, 3, 9), (3, 0, 10), (4, 2, 13), (5, 5, 12),
                                                 (2, 7, 11), (6, 1, 6)])
def test_chunked_forward_equals_the_reference_of_pytorch_modules(case, chunk, lookahead, T):
    kind, cfg, m = model(case)
    rng = rng_for("chunked", case, chunk, lookahead, T)
    B = 3
    x = randn(rng, T, B, cfg["input_size"])
    y, state = m(x, chunk=chunk, lookahead=lookahead)
    weights = m.state_dict()
    for b in range(B):
        expected, forward_states = lc_reference(kind, cfg, weights, x[:, b], chunk, lookahead)
        assert_close(y[:, b], expected, what=f"y of row {b}")
        h = state[0] if kind == "LSTM" else state
        for l, st in enumerate(forward_states):
            h_ref = (st[0] if kind == "LSTM" else st).numpy()[0]
            assert_close(h[2 * l, b], h_ref, what=f"forward state of layer {l}, row {b}")


@pytest.mark.parametrize("case", ["LSTM-proj", "GRU-residual"])
@pytest.mark.parametrize("B, chunk, lookahead", [(1, 1, 3), (2, 1, 2), (2, 2, 0), (3, 2, 1), (50, 3, 2)])
def test_many_windows_run_in_groups_as_one_by_one(case, B, chunk, lookahead):
    # At B <= 2 a whole sequence runs its windows in groups of 32 rows (32 windows at B = 1, 16 at
    # B = 2): several groups here, rows ending in different ones, and windows whose rows are past
    # their lengths; from B = 3 on, one window at a time.
    kind, cfg, m = model(case)
    rng = rng_for("groups", case, B, chunk, lookahead)
    T = 150 if B == 1 else 60
    lengths = rng.integers(0, T + 1, B)
    lengths[0] = T
    x = randn(rng, T, B, cfg["input_size"])
    y, state = m(x, lengths=lengths, chunk=chunk, lookahead=lookahead)
    weights = m.state_dict()
    h = as_states(kind, state)[0]
    for b in range(min(B, 3)):
        n = lengths[b]
        assert np.all(y[n:, b] == 0.0)
        if n == 0:
            continue
        expected, forward_states = lc_reference(kind, cfg, weights, x[:n, b], chunk, lookahead)
        assert_close(y[:n, b], expected, what=f"y of row {b}")
        for l, st in enumerate(forward_states):
            assert_close(h[2 * l, b], (st[0] if kind == "LSTM" else st).numpy()[0], what=f"state of row {b}")
        # A stream runs one window at a time: the same outputs.
        streamed, _ = feed_chunked(m.stream(1, chunk=chunk, lookahead=lookahead), x[:n, b:b + 1], [n])
        assert_close(streamed, y[:n, b:b + 1])


@pytest.mark.parametrize("case", ["LSTM", "GRU"])
def test_one_chunk_over_the_whole_sequence_is_the_plain_forward(case):
    kind, cfg, m = model(case)
    rng = rng_for("one chunk", case)
    x = randn(rng, 9, 2, cfg["input_size"])
    y, state = m(x)
    for chunk in (9, 10, 1000):
        y_c, state_c = m(x, chunk=chunk, lookahead=3)
        np.testing.assert_array_equal(y_c, y)
        for a, b in zip(state_c if kind == "LSTM" else [state_c], state if kind == "LSTM" else [state]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case", ["LSTM-proj", "GRU-residual", "RNN-relu"])
def test_each_row_is_chunked_over_its_own_length(case):
    kind, cfg, m = model(case)
    rng = rng_for("lengths", case)
    T, lengths = 11, np.array([11, 0, 4, 7, 1])
    x = randn(rng, T, len(lengths), cfg["input_size"])
    y, state = m(x, lengths=lengths, chunk=3, lookahead=2)
    weights = m.state_dict()
    h = state[0] if kind == "LSTM" else state
    for b, n in enumerate(lengths):
        assert np.all(y[n:, b] == 0.0), f"row {b}: steps past its length are zeros"
        if n == 0:
            assert np.all(h[:, b] == 0.0)
            continue
        expected, forward_states = lc_reference(kind, cfg, weights, x[:n, b], 3, 2)
        assert_close(y[:n, b], expected, what=f"y of row {b}")
        for l, st in enumerate(forward_states):
            assert_close(h[2 * l, b], (st[0] if kind == "LSTM" else st).numpy()[0], what=f"state of row {b}")


def test_the_initial_state_sets_the_forward_directions_only():
    kind, cfg, m = model("LSTM")
    rng = rng_for("initial state")
    x = randn(rng, 8, 2, cfg["input_size"])
    h0 = randn(rng, 4, 2, 5, scale=0.5)
    c0 = randn(rng, 4, 2, 5, scale=0.5)
    y, _ = m(x, (h0, c0), chunk=3, lookahead=1)
    h0_other_reverse = h0.copy()
    h0_other_reverse[1::2] = 7.0  # the reverse entries are not read
    y_again, _ = m(x, (h0_other_reverse, c0), chunk=3, lookahead=1)
    np.testing.assert_array_equal(y_again, y)
    weights = m.state_dict()
    for b in range(2):
        start = [(torch.from_numpy(h0[2 * l, b][None].copy()), torch.from_numpy(c0[2 * l, b][None].copy()))
                 for l in range(2)]
        expected, _ = lc_reference(kind, cfg, weights, x[:, b], 3, 1, h0=start)
        assert_close(y[:, b], expected)


def test_batch_first_and_unbatched_inputs_give_the_same_chunks():
    kind, cfg, m = model("GRU")
    rng = rng_for("layouts")
    x = randn(rng, 10, 3, cfg["input_size"])
    y, state = m(x, chunk=4, lookahead=2)
    m_bf = make_sr(kind, dict(cfg, batch_first=True), seed=0)
    y_bf, state_bf = m_bf(np.ascontiguousarray(x.transpose(1, 0, 2)), chunk=4, lookahead=2)
    # The same steps in another layout: the input products group their rows otherwise, so float32
    # rounding may differ in the last bit (on AVX2, say).
    assert_close(y_bf.transpose(1, 0, 2), y)
    assert_close(state_bf, state)
    y_one, state_one = m(x[:, 1], chunk=4, lookahead=2)
    assert_close(y_one, y[:, 1])
    assert state_one.shape == (6, 5)


def test_a_unidirectional_model_is_not_changed_by_chunks():
    m = sr.LSTM(3, 4, num_layers=2, seed=1)
    x = randn(rng_for("uni"), 7, 2, 3)
    np.testing.assert_array_equal(m(x, chunk=2, lookahead=1)[0], m(x)[0])


def test_bad_chunk_arguments_are_refused():
    _, cfg, m = model("GRU")
    x = np.zeros((5, 1, cfg["input_size"]), np.float32)
    for chunk, lookahead, error in ((0, 1, ValueError), (-1, 0, ValueError), (2, -1, ValueError),
                                    (1.5, 0, TypeError), (True, 0, TypeError), (2, "1", TypeError)):
        with pytest.raises(error, match="chunk|lookahead"):
            m(x, chunk=chunk, lookahead=lookahead)
    with pytest.raises(ValueError, match="lookahead"):
        m(x, lookahead=2)
    with pytest.raises(ValueError, match="chunk"):
        m(x, chunk=0, lookahead=1, train=True)
    with pytest.raises(ValueError, match="lengths"):
        m(x, lengths=np.array([6]), chunk=2)


# ------------------------------------------------------------------------------------------------
# The stream: process in any pieces, then flush, gives m(x, chunk=, lookahead=).


def feed_chunked(s, x, pieces, batch_first=False):
    """Feeds x (T, B, I) (or (B, T, I)) to s in pieces of the given sizes, then flushes; returns the
    outputs in x's layout and the count returned by each call."""
    axis = 1 if batch_first else 0
    outs, counts, t = [], [], 0
    for n in pieces:
        part = x[:, t:t + n] if batch_first else x[t:t + n]
        y = s.process(np.ascontiguousarray(part))
        counts.append(y.shape[axis])
        outs.append(y)
        t += n
    y = s.flush()
    counts.append(y.shape[axis])
    outs.append(y)
    return np.concatenate(outs, axis=axis), counts


def random_pieces(rng, T):
    pieces = []
    while sum(pieces) < T:
        pieces.append(int(min(T - sum(pieces), rng.integers(0, 6))))
    return pieces


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("chunk, lookahead", [(1, 0), (2, 3), (4, 0), (3, 2), (5, 7)])
def test_a_chunked_stream_fed_in_any_pieces_gives_the_chunked_forward(case, chunk, lookahead):
    kind, cfg, m = model(case)
    rng = rng_for("chunked stream", case, chunk, lookahead)
    T, B = 17, 2
    x = randn(rng, T, B, cfg["input_size"])
    expected, state = m(x, chunk=chunk, lookahead=lookahead)
    s = m.stream(B, chunk=chunk, lookahead=lookahead)
    pieces = random_pieces(rng, T)
    y, counts = feed_chunked(s, x, pieces)
    assert_close(y, expected)
    # Each call returns the chunks completed by then: whole chunks, once their look-ahead is in.
    arrived = np.cumsum(pieces)
    for count, total, previous in zip(counts, arrived, np.concatenate([[0], np.cumsum(counts)])):
        completed = 0 if total < chunk + lookahead else (total - lookahead) // chunk * chunk
        assert count == completed - previous
    assert s.pending == 0
    # After flush the stream starts afresh: the same input gives the same outputs again.
    y_again, _ = feed_chunked(s, x, [T])
    assert_close(y_again, expected)


def test_a_chunked_stream_carries_the_forward_state_and_takes_a_state():
    kind, cfg, m = model("LSTM")
    rng = rng_for("chunked state")
    x = randn(rng, 10, 1, cfg["input_size"])
    h0, c0 = randn(rng, 4, 1, 5, scale=0.5), randn(rng, 4, 1, 5, scale=0.5)
    expected, (h, c) = m(x, (h0, c0), chunk=4, lookahead=2)
    s = m.stream(1, chunk=4, lookahead=2)
    s.state = (h0, c0)
    y = np.concatenate([s.process(x[:6, 0]), s.process(x[6:, 0])])
    forward_h = s.state[0][0::2].copy()
    y = np.concatenate([y, s.flush()])
    assert y.shape == (10, 10)
    assert_close(y, expected[:, 0])
    # Before the flush, the forward directions' state was carried to the end of the last full chunk
    # (layer 0's depends on x alone there; the next layer's, on the look-ahead too).
    _, (h8, _) = m(x[:8], (h0, c0), chunk=4, lookahead=0)
    assert_close(forward_h[0], h8[0])
    s.reset()
    assert all(np.all(v == 0) for v in s.state)


def test_a_bidirectional_model_streams_only_in_chunks_and_bad_streams_are_refused():
    _, cfg, m = model("GRU")
    with pytest.raises(ValueError, match="chunk"):
        m.stream(1)
    with pytest.raises(ValueError, match="lookahead"):
        m.stream(1, lookahead=2)
    for chunk, lookahead, error in ((0, 0, ValueError), (1, -1, ValueError), (1.0, 0, TypeError)):
        with pytest.raises(error):
            m.stream(1, chunk=chunk, lookahead=lookahead)
    s = m.stream(2, chunk=2, lookahead=1)
    with pytest.raises(ValueError, match="x_chunk"):
        s.process(np.zeros((3, 3, cfg["input_size"]), np.float32))
    with pytest.raises(ValueError, match="x_chunk"):
        s.process(np.zeros((3, cfg["input_size"]), np.float32))  # unbatched needs batch 1
    with pytest.raises(IndexError):
        s.reset(2)
    assert s.pending == 0 and (s.chunk, s.lookahead, s.batch) == (2, 1, 2)


def test_a_chunked_stream_takes_batch_first_and_unbatched_input():
    kind, cfg = CASES["GRU"]
    m_bf = make_sr(kind, dict(cfg, batch_first=True), seed=0)
    rng = rng_for("chunked layouts")
    x = randn(rng, 2, 11, cfg["input_size"])  # (B, T, I)
    expected, _ = m_bf(x, chunk=3, lookahead=2)
    y, counts = feed_chunked(m_bf.stream(2, chunk=3, lookahead=2), x, [4, 0, 5, 2], batch_first=True)
    assert_close(y, expected)
    _, _, m = model("GRU")
    one = x[1]  # (T, I): a stream of batch 1 takes it unbatched, and flush answers alike
    expected_one, _ = m(one, chunk=3, lookahead=2)
    y_one, _ = feed_chunked(m.stream(1, chunk=3, lookahead=2), one, [5, 6])
    assert y_one.shape == expected_one.shape
    assert_close(y_one, expected_one)


# ------------------------------------------------------------------------------------------------
# Training in chunks: m(x, chunk=, lookahead=, train=True) then backward, against autograd through
# the reference.


def torch_state(kind, values, b, layer):
    """Row b of one layer's forward state from NumPy (h, c) or h, as a module takes it."""
    pick = lambda v: torch.tensor(v[2 * layer, b][None], requires_grad=True)
    return (pick(values[0]), pick(values[1])) if kind == "LSTM" else pick(values)


def as_states(kind, state):
    return list(state) if kind == "LSTM" else [state]


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("chunk, lookahead, T, lengths", [(3, 2, 10, None), (1, 0, 5, None), (4, 0, 9, [9, 3, 0]),
                                                          (2, 5, 11, [7, 11, 1]), (5, 1, 12, [12, 6, 5])])
def test_chunked_training_gradients_match_autograd_through_the_reference(case, chunk, lookahead, T, lengths):
    kind, cfg, m = model(case)
    rng = rng_for("chunked training", case, chunk, lookahead, T, lengths)
    B = 3
    lengths = np.array(lengths if lengths is not None else [T] * B)
    L, H = cfg["num_layers"], cfg["hidden_size"]
    H_out = cfg.get("proj_size", 0) or H
    x = randn(rng, T, B, cfg["input_size"])
    h0 = (randn(rng, 2 * L, B, H_out, scale=0.5), randn(rng, 2 * L, B, H, scale=0.5)) if kind == "LSTM" \
        else randn(rng, 2 * L, B, H_out, scale=0.5)
    y, state = m(x, h0, lengths=lengths, chunk=chunk, lookahead=lookahead, train=True)
    dy = randn(rng, *y.shape)
    dstate = tuple(randn(rng, *v.shape) for v in state) if kind == "LSTM" else randn(rng, *state.shape)
    m.zero_grad()
    dx, dstate0 = m.backward(dy, dstate)

    modules = modules_of(kind, cfg, m.state_dict())
    for module in modules[0] + modules[1]:
        module.train()
    loss, inputs, starts = 0.0, {}, {}
    for b, n in enumerate(lengths):
        if n == 0:
            continue
        inputs[b] = torch.tensor(x[:n, b], requires_grad=True)
        starts[b] = [torch_state(kind, h0, b, l) for l in range(L)]
        y_ref, forward_states, reverse_states = lc_graph(kind, cfg, modules, inputs[b], chunk, lookahead, starts[b])
        assert_close(y[:n, b], y_ref.detach().numpy(), what=f"y of row {b}")
        loss = loss + (y_ref * torch.from_numpy(dy[:n, b])).sum()
        for l in range(L):
            for k, (fwd, rev) in enumerate(zip(as_states(kind, forward_states[l]), as_states(kind, reverse_states[l]))):
                given = as_states(kind, dstate)[k]
                loss = loss + (fwd[0] * torch.from_numpy(given[2 * l, b])).sum()
                loss = loss + (rev[0] * torch.from_numpy(given[2 * l + 1, b])).sum()
    loss.backward()

    grads = m.grads()
    for direction, suffix in ((0, ""), (1, "_reverse")):
        for l, module in enumerate(modules[direction]):
            for name, p in module.named_parameters():
                ours = grads[name.replace("_l0", f"_l{l}") + suffix]
                assert_close(ours, p.grad.numpy(), what=f"{name} of layer {l}{suffix}")
    for b, n in enumerate(lengths):
        if n == 0:  # a row of no steps: its state passes through, and so does its gradient
            assert np.all(dx[:, b] == 0)
            for ours, given in zip(as_states(kind, dstate0), as_states(kind, dstate)):
                np.testing.assert_array_equal(ours[:, b], given[:, b])
            continue
        assert_close(dx[:n, b], inputs[b].grad.numpy(), what=f"dx of row {b}")
        assert np.all(dx[n:, b] == 0), f"row {b}: no gradient past its length"
        for l in range(L):
            for k, ours in enumerate(as_states(kind, dstate0)):
                start = starts[b][l][k] if kind == "LSTM" else starts[b][l]
                assert_close(ours[2 * l, b], start.grad.numpy()[0], what=f"dstate0 of layer {l}, row {b}")
                assert np.all(ours[2 * l + 1, b] == 0), "the reverse directions start from zeros: no gradient"


@pytest.mark.parametrize("case", ["LSTM-proj", "GRU"])
def test_chunked_training_over_one_chunk_is_plain_training(case):
    kind, cfg, m = model(case)
    rng = rng_for("one chunk training", case)
    x = randn(rng, 8, 2, cfg["input_size"])
    y, state = m(x, train=True)
    dy = randn(rng, *y.shape)
    m.zero_grad()
    dx, _ = m.backward(dy)
    plain = m.grads()
    y_c, _ = m(x, chunk=8, lookahead=4, train=True)
    np.testing.assert_array_equal(y_c, y)
    m.zero_grad()
    dx_c, _ = m.backward(dy)
    np.testing.assert_array_equal(dx_c, dx)
    for name, g in m.grads().items():
        np.testing.assert_array_equal(g, plain[name], err_msg=name)


def test_chunked_training_gives_the_chunked_forward_and_a_plain_record_follows_it():
    kind, cfg, m = model("LSTM")
    rng = rng_for("chunked then plain")
    x = randn(rng, 9, 2, cfg["input_size"])
    y_inference, state_inference = m(x, chunk=2, lookahead=3)
    y, state = m(x, chunk=2, lookahead=3, train=True)
    # Inference runs windows in groups and layer 0's forward once: the same steps, whose products
    # group their rows otherwise (float32 rounding).
    assert_close(y, y_inference)
    assert_close(state, state_inference)
    # A plain training forward after it replaces its record: backward is plain BPTT again.
    y_plain, _ = m(x[:5], train=True)
    dy = randn(rng, *y_plain.shape)
    m.zero_grad()
    dx, _ = m.backward(dy)
    assert dx.shape == (5, 2, cfg["input_size"])
    expected = m.grads()
    m.zero_grad()
    m(x[:5], train=True)
    m.backward(dy)
    for name, g in m.grads().items():
        np.testing.assert_array_equal(g, expected[name], err_msg=name)
    with pytest.raises(ValueError, match="dy"):
        m.backward(np.zeros((9, 2, 10), np.float32))


def test_chunked_training_with_dropout_drops_between_layers_only_in_training():
    m = sr.GRU(3, 4, num_layers=2, bidirectional=True, dropout=0.5, seed=3)
    x = randn(rng_for("chunked dropout"), 12, 2, 3)
    y_eval, _ = m(x, chunk=3, lookahead=2)
    np.testing.assert_array_equal(m(x, chunk=3, lookahead=2)[0], y_eval)
    y_a, _ = m(x, chunk=3, lookahead=2, train=True)
    y_b, _ = m(x, chunk=3, lookahead=2, train=True)
    assert not np.array_equal(y_a, y_eval) and not np.array_equal(y_a, y_b)
    dx, _ = m.backward(np.ones_like(y_b))
    assert dx.shape == x.shape and np.all(np.isfinite(dx))


# ------------------------------------------------------------------------------------------------
# A chunked stream whose state or weights change part way: the pending steps start a chunk from
# the new state, with the new weights (layer 0's forward run over the look-ahead, which the next
# chunk reuses, is made again).


@pytest.mark.parametrize("change", ["state", "weights"])
@pytest.mark.parametrize("chunk, lookahead", [(3, 2), (2, 5), (4, 0)])
def test_a_chunked_stream_changed_part_way_runs_its_pending_steps_from_the_change(change, chunk, lookahead):
    kind, cfg, m = model("LSTM")
    rng = rng_for("changed part way", change, chunk, lookahead)
    x = randn(rng, 16, 2, cfg["input_size"])
    s = m.stream(2, chunk=chunk, lookahead=lookahead)
    y_first = s.process(x[:9])
    done = y_first.shape[0]
    expected_first, _ = m(x[:9], chunk=chunk, lookahead=lookahead)
    state = tuple(v.copy() for v in s.state)
    if change == "state":
        state = tuple(randn(rng, *v.shape, scale=0.5) for v in state)
        s.state = state
    else:  # the windows after it run with the new weights throughout
        m.load_state_dict(make_sr(kind, cfg, seed=5).state_dict())
    y_rest, _ = feed_chunked(s, x[9:], [3, 4])
    expected, _ = m(x[done:], state, chunk=chunk, lookahead=lookahead)
    assert_close(y_first, expected_first[:done])
    assert_close(y_rest, expected)


def test_a_chunked_stream_reset_of_one_row_part_way_starts_its_pending_steps_afresh():
    kind, cfg, m = model("LSTM-proj")
    rng = rng_for("reset part way")
    x = randn(rng, 14, 3, cfg["input_size"])
    s = m.stream(3, chunk=3, lookahead=4)
    done = s.process(x[:8]).shape[0]
    h, c = (v.copy() for v in s.state)
    s.reset(1)
    h[:, 1], c[:, 1] = 0.0, 0.0
    y_rest, _ = feed_chunked(s, x[8:], [6])
    expected, _ = m(x[done:], (h, c), chunk=3, lookahead=4)
    assert_close(y_rest, expected)


# ------------------------------------------------------------------------------------------------
# ONNX's cell options in chunks. For one layer the algorithm is the model's own full forward, piece
# by piece: the forward direction is the full forward's (its inputs, the model's, are the same in
# every window), and each chunk's reverse outputs are those of the model run on its window alone.

OPTION_CASES = {
    "LSTM peepholes, clip": ("LSTM", dict(peepholes=True, clip=0.7)),
    "LSTM functions, coupled gates": ("LSTM", dict(input_forget=True,
                                                   activations=["HardSigmoid", ("LeakyRelu", 0.2), "Softsign"])),
    "GRU functions": ("GRU", dict(activations=["Softsign", ("ScaledTanh", 1.2, 0.9)], clip=1.5)),
    "RNN clip": ("RNN", dict(clip=0.5, activations=["Softsign"])),
}


@pytest.mark.parametrize("case", list(OPTION_CASES))
@pytest.mark.parametrize("chunk, lookahead", [(3, 2), (2, 0), (4, 6)])
def test_cell_options_in_chunks_are_the_models_own_forward_window_by_window(case, chunk, lookahead):
    kind, options = OPTION_CASES[case]
    m = getattr(sr, kind)(3, 4, bidirectional=True, seed=2, **options)
    rng = rng_for("options in chunks", case, chunk, lookahead)
    T, B = 11, 2
    x = randn(rng, T, B, 3)
    y, _ = m(x, chunk=chunk, lookahead=lookahead)
    full, _ = m(x)
    assert_close(y[..., :4], full[..., :4], what="the forward direction")
    for start in range(0, T, chunk):
        end, window_end = min(T, start + chunk), min(T, start + chunk + lookahead)
        window, _ = m(x[start:window_end])
        assert_close(y[start:end, :, 4:], window[: end - start, :, 4:], what=f"the reverse direction at {start}")
    streamed, _ = feed_chunked(m.stream(B, chunk=chunk, lookahead=lookahead), x, random_pieces(rng, T))
    assert_close(streamed, y)


def test_threads_split_the_chunked_forward_by_rows():
    kind, cfg, m = model("LSTM-proj")
    rng = rng_for("chunked threads")
    x = randn(rng, 23, 5, cfg["input_size"])
    lengths = np.array([23, 4, 0, 17, 9])
    expected, expected_state = m(x, lengths=lengths, chunk=3, lookahead=2)
    sr.set_num_threads(2)
    try:
        y, state = m(x, lengths=lengths, chunk=3, lookahead=2)
    finally:
        sr.set_num_threads(1)
    assert_close(y, expected)
    assert_close(state, expected_state)
