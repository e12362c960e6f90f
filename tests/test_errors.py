# tests/test_errors.py
# Every bad input in API.md raises the right exception, names the argument and shape, and changes nothing.
# Part of streamrnn, MIT licence.
import json
import struct

import numpy as np
import pytest
import safetensors.numpy
import torch

import streamrnn as sr
from conftest import (KINDS, assert_close, assert_identical, assert_message_names, randn, rng_for)

STATE_NAME = "(?:state|h|c|h0|c0|hx|cx)"
X_NAME = "(?:x|x_t|x_chunk)"


def _lstm_state(L, B, H_out, H):
    return (np.zeros((L, B, H_out), np.float32), np.zeros((L, B, H), np.float32))


# ------------------------------------------------------------------------------------------------
# x


@pytest.mark.parametrize("kind", KINDS)
def test_x_with_the_wrong_feature_size_is_a_value_error_naming_x_and_its_shape(kind):
    m = getattr(sr, kind)(10, 4)
    with pytest.raises(ValueError) as e:
        m(np.zeros((5, 3, 7), np.float32))
    assert_message_names(e, X_NAME, (5, 3, 7))
    with pytest.raises(ValueError) as e:
        m(np.zeros((6, 9), np.float32))
    assert_message_names(e, X_NAME, (6, 9))
    mb = getattr(sr, kind)(10, 4, batch_first=True)
    with pytest.raises(ValueError) as e:
        mb(np.zeros((3, 5, 11), np.float32))
    assert_message_names(e, X_NAME, (3, 5, 11))


@pytest.mark.parametrize("shape", [(), (10,), (2, 3, 4, 10)], ids=["rank0", "rank1", "rank4"])
@pytest.mark.parametrize("kind", KINDS)
def test_x_of_the_wrong_rank_is_a_value_error(kind, shape):
    m = getattr(sr, kind)(10, 4)
    with pytest.raises(ValueError) as e:
        m(np.zeros(shape, np.float32))
    assert_message_names(e, X_NAME)


@pytest.mark.parametrize("bad", ["a string", None, {"x": 1}, object()], ids=["str", "None", "dict", "object"])
@pytest.mark.parametrize("kind", KINDS)
def test_x_that_is_not_an_array_is_a_type_error(kind, bad):
    m = getattr(sr, kind)(3, 4)
    with pytest.raises(TypeError):
        m(bad)


@pytest.mark.parametrize("kind", KINDS)
def test_a_ragged_list_is_refused(kind):
    m = getattr(sr, kind)(2, 4)
    with pytest.raises((ValueError, TypeError)):
        m([[[1.0, 2.0]], [[1.0]]])


# ------------------------------------------------------------------------------------------------
# state


def _bad_lstm_states(L, B, H_out, H):
    good_h, good_c = _lstm_state(L, B, H_out, H)
    z = np.zeros
    return {
        "h_layer_dim": (z((L + 1, B, H_out), np.float32), good_c),
        "h_batch_dim": (z((L, B + 1, H_out), np.float32), good_c),
        "h_feature_dim": (z((L, B, H_out + 1), np.float32), good_c),
        "c_layer_dim": (good_h, z((L - 1, B, H), np.float32)),
        "c_batch_dim": (good_h, z((L, B - 1, H), np.float32)),
        "c_feature_dim": (good_h, z((L, B, H + 2), np.float32)),
        "h_unbatched": (z((L, H_out), np.float32), good_c),
        "both_rank4": (z((1, L, B, H_out), np.float32), z((1, L, B, H), np.float32)),
    }


@pytest.mark.parametrize("case", list(_bad_lstm_states(4, 3, 2, 5)))
def test_mismatched_lstm_state_shapes_are_value_errors_naming_the_shape(case):
    # 2 layers, bidirectional: L = 4; proj 2 so h and c have different feature sizes
    m = sr.LSTM(3, 5, 2, bidirectional=True, proj_size=2)
    state = _bad_lstm_states(4, 3, 2, 5)[case]
    bad = state[0] if case.startswith("h") or case.startswith("both") else state[1]
    with pytest.raises(ValueError) as e:
        m(np.zeros((6, 3, 3), np.float32), state)
    assert_message_names(e, STATE_NAME, bad.shape)


def test_lstm_h_with_hidden_size_instead_of_proj_size_is_a_value_error():
    m = sr.LSTM(3, 5, proj_size=2)
    with pytest.raises(ValueError) as e:
        m(np.zeros((6, 2, 3), np.float32), _lstm_state(1, 2, 5, 5))
    assert_message_names(e, STATE_NAME, (1, 2, 5))


@pytest.mark.parametrize("bad_shape", [(3, 3, 4), (2, 4, 4), (2, 3, 5), (2, 4), (3, 2, 3, 4)])
@pytest.mark.parametrize("kind", ["GRU", "RNN"])
def test_mismatched_h_shapes_are_value_errors_naming_the_shape(kind, bad_shape):
    m = getattr(sr, kind)(2, 4, 2)  # state (2, 3, 4) for B = 3
    with pytest.raises(ValueError) as e:
        m(np.zeros((5, 3, 2), np.float32), np.zeros(bad_shape, np.float32))
    assert_message_names(e, STATE_NAME, bad_shape)


@pytest.mark.parametrize("kind", KINDS)
def test_a_batched_state_with_unbatched_x_is_a_value_error(kind):
    m = getattr(sr, kind)(2, 4)
    h = np.zeros((1, 1, 4), np.float32)
    state = (h, h.copy()) if kind == "LSTM" else h
    with pytest.raises(ValueError):
        m(np.zeros((5, 2), np.float32), state)


def test_a_tuple_state_for_a_gru_or_rnn_is_a_type_error():
    h = np.zeros((1, 2, 4), np.float32)
    for m in (sr.GRU(2, 4), sr.RNN(2, 4)):
        with pytest.raises(TypeError):
            m(np.zeros((5, 2, 2), np.float32), (h, h))


def test_a_non_tuple_state_for_an_lstm_is_a_type_error():
    m = sr.LSTM(2, 4)
    with pytest.raises(TypeError):
        m(np.zeros((5, 2, 2), np.float32), np.zeros((1, 2, 4), np.float32))
    with pytest.raises(TypeError):
        m(np.zeros((5, 2, 2), np.float32), "state")


def test_an_lstm_state_tuple_of_the_wrong_length_is_refused():
    m = sr.LSTM(2, 4)
    h = np.zeros((1, 2, 4), np.float32)
    for state in [(h,), (h, h, h)]:
        with pytest.raises((TypeError, ValueError)):
            m(np.zeros((5, 2, 2), np.float32), state)


# ------------------------------------------------------------------------------------------------
# lengths


@pytest.mark.parametrize("kind", KINDS)
def test_negative_lengths_are_a_value_error_naming_lengths(kind):
    m = getattr(sr, kind)(2, 3)
    with pytest.raises(ValueError) as e:
        m(np.zeros((5, 3, 2), np.float32), lengths=np.array([5, -1, 2]))
    assert_message_names(e, "lengths")


@pytest.mark.parametrize("kind", KINDS)
def test_lengths_longer_than_the_sequence_are_a_value_error_naming_lengths(kind):
    m = getattr(sr, kind)(2, 3, batch_first=True)
    with pytest.raises(ValueError) as e:
        m(np.zeros((3, 5, 2), np.float32), lengths=[5, 6, 2])
    assert_message_names(e, "lengths")


@pytest.mark.parametrize("bad", [[5, 5], [5, 5, 5, 5], [[5], [5], [5]], 5], ids=["short", "long", "2d", "scalar"])
@pytest.mark.parametrize("kind", KINDS)
def test_lengths_of_the_wrong_shape_are_a_value_error_naming_lengths(kind, bad):
    m = getattr(sr, kind)(2, 3)
    with pytest.raises(ValueError) as e:
        m(np.zeros((5, 3, 2), np.float32), lengths=np.array(bad))
    assert_message_names(e, "lengths")


@pytest.mark.parametrize("bad", [np.array([5.0, 2.0, 1.0]), [5.0, 2.5, 1.0], np.array([5, 2, 1], np.float32)],
                         ids=["float64", "float_list", "float32"])
@pytest.mark.parametrize("kind", KINDS)
def test_non_integer_lengths_are_a_type_error(kind, bad):
    m = getattr(sr, kind)(2, 3)
    with pytest.raises(TypeError):
        m(np.zeros((5, 3, 2), np.float32), lengths=bad)


@pytest.mark.parametrize("kind", KINDS)
def test_lengths_with_unbatched_input_are_a_value_error(kind):
    m = getattr(sr, kind)(2, 3)
    with pytest.raises(ValueError) as e:
        m(np.zeros((5, 2), np.float32), lengths=[5])
    assert_message_names(e, "lengths")


# ------------------------------------------------------------------------------------------------
# cells

CELLS = {"LSTM": sr.LSTMCell, "GRU": sr.GRUCell, "RNN": sr.RNNCell}


@pytest.mark.parametrize("kind", KINDS)
def test_cell_input_of_the_wrong_shape_is_a_value_error_naming_x(kind):
    cell = CELLS[kind](3, 4)
    for shape in [(2, 5), (5,), (1, 2, 3), ()]:
        with pytest.raises(ValueError) as e:
            cell(np.zeros(shape, np.float32))
        assert_message_names(e, X_NAME, shape if shape else None)


@pytest.mark.parametrize("kind", KINDS)
def test_cell_state_of_the_wrong_shape_is_a_value_error(kind):
    cell = CELLS[kind](3, 4)
    x = np.zeros((2, 3), np.float32)
    for shape in [(2, 5), (3, 4), (4,), (1, 2, 4)]:
        h = np.zeros(shape, np.float32)
        good = np.zeros((2, 4), np.float32)
        states = [(h, good), (good, h)] if kind == "LSTM" else [h]
        for state in states:
            with pytest.raises(ValueError) as e:
                cell(x, state)
            assert_message_names(e, STATE_NAME, shape)


def test_cell_state_of_the_wrong_type_is_a_type_error():
    h = np.zeros((2, 4), np.float32)
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError):
        sr.LSTMCell(3, 4)(x, h)
    with pytest.raises(TypeError):
        sr.GRUCell(3, 4)(x, (h, h))
    with pytest.raises(TypeError):
        sr.RNNCell(3, 4)(x, (h, h))
    with pytest.raises(TypeError):
        sr.RNNCell(3, 4)("x")


# ------------------------------------------------------------------------------------------------
# constructors


BAD_ARGS = [
    ("hidden_size_zero", lambda k: getattr(sr, k)(3, 0)),
    ("hidden_size_negative", lambda k: getattr(sr, k)(3, -2)),
    ("input_size_negative", lambda k: getattr(sr, k)(-1, 4)),
    ("num_layers_zero", lambda k: getattr(sr, k)(3, 4, 0)),
    ("num_layers_negative", lambda k: getattr(sr, k)(3, 4, -1)),
    ("dropout_negative", lambda k: getattr(sr, k)(3, 4, 2, dropout=-0.1)),
    ("dropout_above_one", lambda k: getattr(sr, k)(3, 4, 2, dropout=1.5)),
    ("cell_hidden_size_zero", lambda k: CELLS[k](3, 0)),
    ("cell_hidden_size_negative", lambda k: CELLS[k](3, -4)),
]


@pytest.mark.parametrize("name,make", BAD_ARGS, ids=[n for n, _ in BAD_ARGS])
@pytest.mark.parametrize("kind", KINDS)
def test_bad_constructor_arguments_are_value_errors(kind, name, make):
    with pytest.raises(ValueError):
        make(kind)


@pytest.mark.parametrize("proj_size", [5, 6, -1])
def test_proj_size_not_below_hidden_size_or_negative_is_a_value_error(proj_size):
    with pytest.raises(ValueError) as e:
        sr.LSTM(3, 5, proj_size=proj_size)
    assert_message_names(e, "proj_size")


def test_an_unknown_nonlinearity_is_a_value_error():
    with pytest.raises(ValueError) as e:
        sr.RNN(3, 4, nonlinearity="sigmoid")
    assert_message_names(e, "nonlinearity")
    with pytest.raises(ValueError):
        sr.RNNCell(3, 4, nonlinearity="gelu")


def test_options_of_other_kinds_are_type_errors():
    with pytest.raises(TypeError):
        sr.GRU(3, 4, proj_size=2)
    with pytest.raises(TypeError):
        sr.LSTM(3, 4, nonlinearity="relu")
    with pytest.raises(TypeError):
        sr.RNN(3, 4, reset_after=False)


@pytest.mark.parametrize("kind", KINDS)
def test_non_integer_sizes_are_type_errors(kind):
    with pytest.raises(TypeError):
        getattr(sr, kind)(3, 4.5)
    with pytest.raises(TypeError):
        getattr(sr, kind)("3", 4)


@pytest.mark.parametrize("dropout", [0.0, 1.0])
def test_dropout_at_the_ends_of_its_range_is_accepted(dropout):
    m = sr.GRU(3, 4, 2, dropout=dropout)
    assert m.dropout == dropout


def test_from_torch_refuses_anything_but_a_supported_torch_module():
    # supported: LSTM, GRU, RNN, their cells, Linear and Embedding
    for bad in [torch.nn.Conv1d(2, 3, 1), torch.nn.Sequential(torch.nn.LSTM(2, 3)), "LSTM", None, sr.LSTM(2, 3),
                torch.nn.TransformerEncoderLayer(4, 2)]:
        with pytest.raises(TypeError):
            sr.from_torch(bad)


# ------------------------------------------------------------------------------------------------
# load_state_dict


def _fresh_weights(m):
    """A complete state dict for m with new values (so a partial load would be visible)."""
    return {k: (v + 0.25).astype(np.float32) for k, v in m.state_dict().items()}


@pytest.mark.parametrize("kind", KINDS)
def test_a_missing_key_is_a_value_error_naming_it_and_nothing_is_loaded(kind):
    m = getattr(sr, kind)(3, 4, 2, seed=0)
    before = m.state_dict()
    d = _fresh_weights(m)
    del d["bias_hh_l1"]
    with pytest.raises(ValueError) as e:
        m.load_state_dict(d)
    assert_message_names(e, "bias_hh_l1")
    _assert_same_weights(m, before)


@pytest.mark.parametrize("kind", KINDS)
def test_an_unexpected_key_is_a_value_error_naming_it_and_nothing_is_loaded(kind):
    m = getattr(sr, kind)(3, 4, 2, seed=0)
    before = m.state_dict()
    for extra in ["weight_ih_l2", "weight_hh_l0_reverse", "weight_hr_l0", "nonsense"]:
        d = _fresh_weights(m)
        d[extra] = np.zeros((4, 4), np.float32)
        with pytest.raises(ValueError) as e:
            m.load_state_dict(d)
        assert_message_names(e, extra)
        _assert_same_weights(m, before)


@pytest.mark.parametrize("kind", KINDS)
def test_a_wrongly_shaped_tensor_is_a_value_error_naming_key_and_shape_and_nothing_is_loaded(kind):
    m = getattr(sr, kind)(3, 4, 2, bidirectional=True, seed=0)
    before = m.state_dict()
    for key in ["weight_ih_l0", "bias_hh_l1_reverse", "weight_hh_l1"]:
        d = _fresh_weights(m)
        shape = d[key].shape
        bad_shape = (shape[0] + 1,) + shape[1:] if len(shape) == 1 else (shape[0], shape[1] + 2)
        d[key] = np.zeros(bad_shape, np.float32)
        with pytest.raises(ValueError) as e:
            m.load_state_dict(d)
        assert_message_names(e, key, bad_shape)
        _assert_same_weights(m, before)
        d[key] = np.zeros((1,) + shape, np.float32)  # right numbers, wrong rank
        with pytest.raises(ValueError):
            m.load_state_dict(d)
        _assert_same_weights(m, before)


def test_a_projection_state_dict_does_not_load_into_a_plain_lstm():
    src = sr.LSTM(3, 5, proj_size=2, seed=0)
    m = sr.LSTM(3, 5, seed=1)
    before = m.state_dict()
    with pytest.raises(ValueError):
        m.load_state_dict(src.state_dict())
    _assert_same_weights(m, before)


def test_a_cell_state_dict_uses_unsuffixed_names_strictly():
    cell = sr.GRUCell(3, 4)
    before = cell.state_dict()
    layer = sr.GRU(3, 4)
    with pytest.raises(ValueError) as e:
        cell.load_state_dict(layer.state_dict())
    assert_message_names(e, "(?:weight_ih_l0|weight_ih|weight_hh|bias_ih|bias_hh|weight_hh_l0|bias_ih_l0|bias_hh_l0)")
    _assert_same_weights(cell, before)


@pytest.mark.parametrize("bad", ["not a dict", None, [("weight_ih_l0", np.zeros((12, 3)))]],
                         ids=["str", "None", "list"])
def test_load_state_dict_of_a_non_mapping_is_a_type_error(bad):
    m = sr.GRU(3, 4)
    before = m.state_dict()
    with pytest.raises(TypeError):
        m.load_state_dict(bad)
    _assert_same_weights(m, before)


def test_a_state_dict_value_that_is_not_an_array_is_refused():
    m = sr.GRU(3, 4, seed=0)
    before = m.state_dict()
    d = _fresh_weights(m)
    d["bias_hh_l0"] = "zeros"
    with pytest.raises((TypeError, ValueError)):
        m.load_state_dict(d)
    _assert_same_weights(m, before)


def _assert_same_weights(m, before):
    after = m.state_dict()
    assert list(after) == list(before)
    for k in before:
        assert_identical(after[k], before[k], f"{k} after a refused load")


# ------------------------------------------------------------------------------------------------
# streams


def test_a_bidirectional_models_stream_is_a_value_error():
    for m in (sr.LSTM(3, 4, bidirectional=True), sr.GRU(3, 4, 2, bidirectional=True),
              sr.RNN(3, 4, bidirectional=True)):
        with pytest.raises(ValueError):
            m.stream()
        with pytest.raises(ValueError):
            m.stream(batch=2)


@pytest.mark.parametrize("kind", KINDS)
def test_a_stream_of_batch_zero_is_a_value_error(kind):
    with pytest.raises(ValueError):
        getattr(sr, kind)(3, 4).stream(batch=0)


@pytest.mark.parametrize("i", [3, 4, -4, 100, -100])
@pytest.mark.parametrize("kind", KINDS)
def test_reset_of_a_stream_out_of_range_is_an_index_error_and_changes_nothing(kind, i):
    rng = rng_for("reset oor", kind, i)
    s = getattr(sr, kind)(2, 4, seed=0).stream(batch=3)
    s.process(randn(rng, 4, 3, 2))
    before = s.state
    with pytest.raises(IndexError):
        s.reset(i)
    assert_identical(s.state, before, "state after a refused reset")


def _stream_and_twin(kind, B=2, **kw):
    rng = rng_for("twin", kind, B, repr(kw))
    m = getattr(sr, kind)(3, 4, 2, seed=0, **kw)
    s, twin = m.stream(batch=B), m.stream(batch=B)
    x = randn(rng, 3, B, 3)
    s.process(x)
    twin.process(x)
    return m, s, twin, rng


def _assert_stream_untouched(s, twin, rng, B):
    assert_identical(s.state, twin.state, "state after a refused call")
    x = randn(rng, 2, B, 3)
    assert_close(s.process(x), twin.process(x), what="outputs after a refused call")


@pytest.mark.parametrize("shape", [(2, 4), (3, 3), (3,), (2, 2, 3), ()])
@pytest.mark.parametrize("kind", KINDS)
def test_stepping_with_a_badly_shaped_x_is_a_value_error_and_changes_nothing(kind, shape):
    m, s, twin, rng = _stream_and_twin(kind)
    with pytest.raises(ValueError) as e:
        s.step(np.zeros(shape, np.float32))
    assert_message_names(e, X_NAME, shape if shape else None)
    _assert_stream_untouched(s, twin, rng, 2)


@pytest.mark.parametrize("shape", [(5, 2, 4), (5, 3, 3), (5, 3), (2, 3), (1, 5, 2, 3)])
@pytest.mark.parametrize("kind", KINDS)
def test_processing_a_badly_shaped_chunk_is_a_value_error_and_changes_nothing(kind, shape):
    m, s, twin, rng = _stream_and_twin(kind)
    with pytest.raises(ValueError) as e:
        s.process(np.zeros(shape, np.float32))
    assert_message_names(e, X_NAME, shape)
    _assert_stream_untouched(s, twin, rng, 2)


def test_a_batch_first_stream_refuses_a_time_major_chunk():
    m = sr.GRU(3, 4, batch_first=True, seed=0)
    s = m.stream(batch=2)
    with pytest.raises(ValueError):
        s.process(np.zeros((5, 3, 3), np.float32))  # (T, B, I) would be read as B=5


@pytest.mark.parametrize("kind", KINDS)
def test_stepping_with_a_string_is_a_type_error(kind):
    m, s, twin, rng = _stream_and_twin(kind)
    with pytest.raises(TypeError):
        s.step("x")
    _assert_stream_untouched(s, twin, rng, 2)


def _outs(H_out, B):
    return {
        "float64": (TypeError, np.zeros((B, H_out), np.float64)),
        "list": (TypeError, [[0.0] * H_out] * B),
        "non_contiguous": (TypeError, np.zeros((B, 2 * H_out), np.float32)[:, ::2]),
        "fortran_order": (TypeError, np.asfortranarray(np.zeros((B, H_out), np.float32))),
        "wrong_shape": (ValueError, np.zeros((B, H_out + 1), np.float32)),
        "wrong_batch": (ValueError, np.zeros((B + 1, H_out), np.float32)),
        "wrong_rank": (ValueError, np.zeros((1, B, H_out), np.float32)),
    }


@pytest.mark.parametrize("case", list(_outs(4, 2)))
@pytest.mark.parametrize("kind", KINDS)
def test_step_with_an_unusable_out_is_refused_and_changes_nothing(kind, case):
    m, s, twin, rng = _stream_and_twin(kind)
    exc, out = _outs(4, 2)[case]
    snapshot = np.array(out, copy=True) if isinstance(out, np.ndarray) else None
    with pytest.raises(exc) as e:
        s.step(randn(rng, 2, 3), out=out)
    if exc is ValueError:
        assert_message_names(e, "out", out.shape)
    if snapshot is not None:
        assert_identical(out, snapshot, "out after a refused step")
    _assert_stream_untouched(s, twin, rng, 2)


@pytest.mark.parametrize("kind", KINDS)
def test_step_writes_into_a_float32_torch_tensor_given_as_out(kind):
    # out= takes any writable C-contiguous float32 CPU array (NumPy, or torch through DLPack).
    m, s, twin, rng = _stream_and_twin(kind)
    x = randn(rng, 2, 3)
    out = torch.zeros(2, 4)
    assert s.step(x, out=out) is out
    expected = twin.step(x)
    np.testing.assert_array_equal(out.numpy(), expected)


@pytest.mark.parametrize("kind", KINDS)
def test_step_with_a_read_only_out_is_refused(kind):
    m, s, twin, rng = _stream_and_twin(kind)
    out = np.zeros((2, 4), np.float32)
    out.setflags(write=False)
    with pytest.raises((TypeError, ValueError)):
        s.step(randn(rng, 2, 3), out=out)
    assert np.all(out == 0.0)
    _assert_stream_untouched(s, twin, rng, 2)


def _bad_stream_states(kind, L, B, H):
    z = lambda *s: np.zeros(s, np.float32)  # noqa: E731
    if kind == "LSTM":
        return {
            "h_layer": (ValueError, (z(L + 1, B, H), z(L, B, H))),
            "h_batch": (ValueError, (z(L, B + 1, H), z(L, B, H))),
            "c_feature": (ValueError, (z(L, B, H), z(L, B, H + 1))),
            "c_batch": (ValueError, (z(L, B, H), z(L, B - 1, H))),
            "unbatched_with_batch_2": (ValueError, (z(L, H), z(L, H))),
            "not_a_tuple": (TypeError, z(L, B, H)),
        }
    return {
        "layer": (ValueError, z(L + 1, B, H)),
        "batch": (ValueError, z(L, B + 1, H)),
        "feature": (ValueError, z(L, B, H + 1)),
        "unbatched_with_batch_2": (ValueError, z(L, H)),
        "tuple": (TypeError, (z(L, B, H), z(L, B, H))),
    }


@pytest.mark.parametrize("kind,case", [(k, c) for k in KINDS for c in _bad_stream_states(k, 2, 2, 4)])
def test_setting_a_stream_state_of_the_wrong_shape_or_type_is_refused_and_changes_nothing(kind, case):
    m, s, twin, rng = _stream_and_twin(kind)
    exc, state = _bad_stream_states(kind, 2, 2, 4)[case]
    with pytest.raises(exc) as e:
        s.state = state
    if exc is ValueError and case != "unbatched_with_batch_2":
        bad = [v for v in (state if isinstance(state, tuple) else (state,)) if v.shape != (2, 2, 4)][0]
        assert_message_names(e, STATE_NAME, bad.shape)
    _assert_stream_untouched(s, twin, rng, 2)


@pytest.mark.parametrize("kind", KINDS)
def test_a_stream_of_batch_two_refuses_unbatched_steps(kind):
    m, s, twin, rng = _stream_and_twin(kind)
    with pytest.raises(ValueError):
        s.step(np.zeros(3, np.float32))
    with pytest.raises(ValueError):
        s.process(np.zeros((4, 3), np.float32))
    _assert_stream_untouched(s, twin, rng, 2)


# ------------------------------------------------------------------------------------------------
# model files (all in-process: a crash here kills pytest, which is itself the failure)


def test_loading_a_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        sr.load(tmp_path / "nope.safetensors")
    with pytest.raises(FileNotFoundError):
        sr.load(str(tmp_path / "nope" / "nope.safetensors"))


def _saved_bytes(tmp_path, m, name="m.safetensors"):
    path = tmp_path / name
    m.save(path)
    return path.read_bytes()


def _split(data: bytes):
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def _join(header: dict, body: bytes) -> bytes:
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + body


def _assert_refused(tmp_path, data: bytes, what: str):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(data)
    with pytest.raises(ValueError):
        sr.load(path)
        pytest.fail(f"loaded a file with {what}")


def test_the_corruption_helpers_round_trip_a_valid_file(tmp_path):
    data = _saved_bytes(tmp_path, sr.GRU(2, 3, seed=0))
    header, body = _split(data)
    path = tmp_path / "again.safetensors"
    path.write_bytes(_join(header, body))
    loaded = sr.load(path)
    assert type(loaded) is sr.GRU


@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 64, 1000, 100_000])
def test_random_bytes_are_a_value_error(tmp_path, size):
    rng = rng_for("random bytes", size)
    for _ in range(5):
        _assert_refused(tmp_path, rng.integers(0, 256, size, dtype=np.uint8).tobytes(), "random bytes")
    if size >= 8:  # a plausible header length followed by garbage
        garbage = rng.integers(0, 256, size - 8, dtype=np.uint8).tobytes()
        _assert_refused(tmp_path, struct.pack("<Q", size - 8) + garbage, "a garbage header")


def test_every_truncation_of_a_small_model_file_is_a_value_error(tmp_path):
    data = _saved_bytes(tmp_path, sr.GRU(2, 3, seed=0))
    for n in range(len(data)):
        _assert_refused(tmp_path, data[:n], f"{n} of {len(data)} bytes")


def test_truncations_of_a_larger_model_file_are_value_errors(tmp_path):
    data = _saved_bytes(tmp_path, sr.LSTM(5, 7, 2, bidirectional=True, proj_size=3, seed=0))
    (n_header,) = struct.unpack("<Q", data[:8])
    lengths = set(range(0, 24)) | set(range(n_header - 8, n_header + 24)) | set(range(0, len(data), 37)) \
        | {len(data) - k for k in range(1, 9)}
    for n in sorted(lengths):
        if 0 <= n < len(data):
            _assert_refused(tmp_path, data[:n], f"{n} of {len(data)} bytes")


def _corruptions(data: bytes):
    """name -> a function returning the corrupted bytes (built lazily, one at a time)."""
    header, body = _split(data)
    n = struct.unpack("<Q", data[:8])[0]
    names = [k for k in header if k != "__metadata__"]
    first = names[0] if names else "a"
    mid = 8 + n // 2

    def edit(fn):
        def make():
            h = json.loads(json.dumps(header))
            fn(h)
            return _join(h, body)
        return make

    return {
        "header_length_huge": lambda: struct.pack("<Q", 2**63) + data[8:],
        "header_length_max": lambda: struct.pack("<Q", 2**64 - 1) + data[8:],
        "header_length_past_end": lambda: struct.pack("<Q", len(data)) + data[8:],
        "header_length_100MB": lambda: struct.pack("<Q", 100 << 20) + data[8:],
        "header_length_zero": lambda: struct.pack("<Q", 0) + data[8:],
        "header_bytes_garbled": lambda: data[:8] + bytes((b ^ 0x5A) for b in data[8:8 + n]) + data[8 + n:],
        "header_one_byte_zeroed": lambda: data[:mid] + b"\x00" + data[mid + 1:],
        "header_not_an_object": lambda: _join_raw(b"[1, 2, 3]", body),
        "header_empty_object": lambda: _join({}, body),
        "header_deeply_nested": lambda: _join_raw(b"[" * 100_000 + b"]" * 100_000, body),
        "header_invalid_utf8": lambda: _join_raw(b'{"\xff\xfe": 1}', body),
        "offsets_past_the_end": edit(lambda h: h[first].update(
            data_offsets=[h[first]["data_offsets"][0], len(body) + 4])),
        "offsets_reversed": edit(lambda h: h[first].update(data_offsets=h[first]["data_offsets"][::-1])),
        "offsets_negative": edit(lambda h: h[first].update(data_offsets=[-8, h[first]["data_offsets"][1]])),
        "offsets_huge": edit(lambda h: h[first].update(data_offsets=[2**62, 2**62 + 16])),
        "shape_disagrees_with_offsets": edit(lambda h: h[first].update(shape=[s + 1 for s in h[first]["shape"]])),
        "shape_negative": edit(lambda h: h[first].update(shape=[-1] + h[first]["shape"][1:])),
        "shape_huge": edit(lambda h: h[first].update(shape=[2**40, 2**40])),
        "dtype_unknown": edit(lambda h: h[first].update(dtype="Q7")),
        "dtype_integer": edit(lambda h: h[first].update(dtype="I32")),
        "tensor_missing": edit(lambda h: h.pop(names[-1])),
        "tensor_renamed": edit(lambda h: h.update({"unexpected_name": h.pop(first)})),
        "no_metadata": edit(lambda h: h.pop("__metadata__", None)),
        "metadata_not_strings": edit(lambda h: h.update({"__metadata__": {"x": [1, 2]}})),
        "metadata_hidden_size_changed": edit(_change_hidden_size),
    }


def _join_raw(header_bytes: bytes, body: bytes) -> bytes:
    return struct.pack("<Q", len(header_bytes)) + header_bytes + body


def _change_hidden_size(h):
    meta = h.get("__metadata__", {})
    assert _bump_hidden_size(meta), "the metadata should record hidden_size"


def _bump_hidden_size(meta: dict) -> bool:
    """Add 1 to every hidden_size in the metadata, including inside JSON-encoded values."""
    found = False
    for k, v in list(meta.items()):
        if k == "hidden_size":
            meta[k] = str(int(v) + 1) if isinstance(v, str) else v + 1
            found = True
        elif isinstance(v, dict):
            found |= _bump_hidden_size(v)
        elif isinstance(v, str):
            try:
                inner = json.loads(v)
            except ValueError:
                continue
            if isinstance(inner, dict) and _bump_hidden_size(inner):
                meta[k] = json.dumps(inner)
                found = True
    return found


CORRUPTIONS = list(_corruptions(_join({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4)))


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_a_corrupted_model_file_is_a_value_error(tmp_path, corruption):
    m = sr.LSTM(3, 4, 2, proj_size=2, seed=0)
    data = _saved_bytes(tmp_path, m)
    _assert_refused(tmp_path, _corruptions(data)[corruption](), corruption)


def test_a_plain_safetensors_file_without_streamrnn_metadata_is_a_value_error(tmp_path):
    sd = {k: v.numpy() for k, v in torch.nn.LSTM(3, 4).state_dict().items()}
    path = tmp_path / "plain.safetensors"
    safetensors.numpy.save_file(sd, str(path))
    with pytest.raises(ValueError):
        sr.load(path)


def test_a_file_whose_tensors_disagree_with_its_metadata_is_a_value_error(tmp_path):
    src = tmp_path / "m.safetensors"
    sr.GRU(3, 4, 2, seed=0).save(src)
    with safetensors.safe_open(str(src), framework="np") as f:
        meta = f.metadata()
    tensors = safetensors.numpy.load_file(str(src))
    variants = {
        "wrong_shape": {**tensors, "weight_hh_l1": np.zeros((12, 5), np.float32)},
        "extra_tensor": {**tensors, "weight_ih_l2": np.zeros((12, 4), np.float32)},
        "missing_tensor": {k: v for k, v in tensors.items() if k != "bias_ih_l1"},
        "float64_tensor_of_wrong_shape": {**tensors, "bias_ih_l0": np.zeros(13, np.float64)},
    }
    for name, t in variants.items():
        path = tmp_path / f"{name}.safetensors"
        safetensors.numpy.save_file(t, str(path), metadata=meta)
        with pytest.raises(ValueError):
            sr.load(path)
            pytest.fail(name)


def test_a_file_that_was_refused_leaves_the_library_usable(tmp_path):
    _assert_refused(tmp_path, b"\x10" + b"\0" * 7 + b"{" * 16, "garbage")
    m = sr.GRU(2, 3, seed=0)
    m.save(tmp_path / "ok.safetensors")
    loaded = sr.load(tmp_path / "ok.safetensors")
    x = np.ones((4, 1, 2), np.float32)
    assert_identical(loaded(x), m(x), "outputs")


# ------------------------------------------------------------------------------------------------
# Paths, sizes and values that the layers above the engine must refuse clearly


def test_a_nul_byte_in_a_path_is_a_value_error_and_touches_no_file(tmp_path):
    # R3: the file system reads NUL as the end of a path; open() refuses it, so do we.
    m = sr.GRU(3, 4, seed=0)
    good = tmp_path / "model.safetensors"
    m.save(good)
    with pytest.raises(ValueError, match="null byte"):
        sr.load(str(good) + "\0junk")
    with pytest.raises(ValueError, match="null byte"):
        m.save(str(tmp_path / "victim") + "\0.safetensors")
    assert not (tmp_path / "victim").exists()
    model = sr.models.LanguageModel(5, 3, 4, seed=0)
    with pytest.raises(ValueError, match="null byte"):
        model.save(str(tmp_path / "lm") + "\0.safetensors")
    assert not (tmp_path / "lm").exists()


def test_a_path_of_another_type_is_a_type_error_naming_it(tmp_path):
    m = sr.GRU(3, 4, seed=0)
    m.save(tmp_path / "m.safetensors")
    assert isinstance(sr.load(bytes(tmp_path / "m.safetensors")), sr.GRU)  # bytes paths are paths
    for bad in (3, None, ["m"]):
        with pytest.raises(TypeError, match="path"):
            sr.load(bad)


def test_a_composite_file_claiming_huge_sizes_is_refused_before_anything_is_made(tmp_path):
    # R2: a 2 KB file whose config claims a vocabulary of 4M rows must not allocate them.
    model = sr.models.LanguageModel(10, 8, 6, seed=0)
    path = tmp_path / "lm.safetensors"
    model.save(path)
    tensors, metadata = sr._core.load_tensors(str(path))
    config = json.loads(metadata["config"])
    config.update(vocab_size=4194304, embed_dim=256)
    forged = tmp_path / "forged.safetensors"
    sr._core.save_tensors(str(forged), tensors, dict(metadata, config=json.dumps(config)))
    with pytest.raises(ValueError, match="embedding.weight"):
        sr.load(forged)
    config = json.loads(metadata["config"])
    config.update(num_layers=1000)
    sr._core.save_tensors(str(forged), tensors, dict(metadata, config=json.dumps(config)))
    with pytest.raises(ValueError, match="weight_hh_l999"):
        sr.load(forged)


@pytest.mark.parametrize("config", ["not json", "[1, 2]", '{"vocab_size": 10}', '{"nonsense": 1}'])
def test_a_composite_file_with_a_bad_config_is_a_value_error_saying_so(tmp_path, config):
    model = sr.models.LanguageModel(10, 8, 6, seed=0)
    path = tmp_path / "lm.safetensors"
    model.save(path)
    tensors, metadata = sr._core.load_tensors(str(path))
    sr._core.save_tensors(str(path), tensors, dict(metadata, config=config))
    with pytest.raises(ValueError, match="config"):
        sr.load(path)


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_generate_refuses_a_temperature_that_is_negative_or_not_finite(value):
    model = sr.models.LanguageModel(10, 8, 6, seed=0)
    with pytest.raises(ValueError, match="temperature"):
        model.generate([1, 2], 5, temperature=value)
    assert len(model.generate([1, 2], 3, temperature=0.0)) == 3


@pytest.mark.parametrize("call", [lambda: sr.LSTM(1, 2**63), lambda: sr.GRU(2**40, 4), lambda: sr.RNN(3, 4, 2**70)])
def test_a_size_too_large_for_any_machine_is_a_value_error_naming_it(call):
    # R6: sizes past 64 bits get a message of their own, not the bindings' signature dump.
    with pytest.raises(ValueError, match="size|num_layers"):
        call()


@pytest.mark.parametrize("batch", [2**64, 2**24 + 1, 0, -1])
def test_a_stream_batch_out_of_range_is_a_value_error_naming_it(batch):
    with pytest.raises(ValueError, match="batch"):
        sr.LSTM(3, 4).stream(batch=batch)


@pytest.mark.parametrize("i,error", [(2**63, IndexError), (2**70, IndexError), (1.5, TypeError), ("0", TypeError),
                                     (True, TypeError)])
def test_reset_with_an_index_that_is_not_a_stream_is_an_index_or_type_error_naming_it(i, error):
    s = sr.GRU(3, 4).stream(2)
    with pytest.raises(error, match="reset"):
        s.reset(i)
    s.reset(np.int64(1))  # NumPy's integers are integers


@pytest.mark.parametrize("threads", [2**31, 2**64, 0, -3])
def test_set_num_threads_out_of_range_is_a_value_error_naming_it(threads):
    with pytest.raises(ValueError, match="threads"):
        sr.set_num_threads(threads)
    assert sr.get_num_threads() == 1


@pytest.mark.parametrize("threads", [1.5, "2", None])
def test_set_num_threads_of_another_type_is_a_type_error(threads):
    with pytest.raises(TypeError, match="threads"):
        sr.set_num_threads(threads)


def test_complex_input_is_a_type_error_not_cast_to_its_real_part():
    m = sr.LSTM(3, 4)
    with pytest.raises(TypeError, match="x.*complex"):
        m(np.ones((2, 1, 3), np.complex64))
    with pytest.raises(TypeError, match="complex"):
        m.load_state_dict({k: v.astype(np.complex128) for k, v in m.state_dict().items()})


def test_none_for_x_or_for_a_tensor_is_a_type_error_naming_it():
    m = sr.LSTM(3, 4)
    with pytest.raises(TypeError, match="x.*None"):
        m(None)
    with pytest.raises(TypeError, match="x.*None"):
        m.stream(1).step(None)
    state = m.state_dict()
    name = next(iter(state))
    with pytest.raises(TypeError, match=name + ".*None"):
        m.load_state_dict(dict(state, **{name: None}))


def test_a_bfloat16_tensor_is_a_type_error_that_names_its_dtype_and_the_way_out():
    m = sr.LSTM(3, 4)
    with pytest.raises(TypeError, match="bfloat16.*float"):
        m(torch.zeros(2, 1, 3, dtype=torch.bfloat16))


@pytest.mark.parametrize("max_norm", [float("nan"), -1.0])
def test_clip_grad_norm_refuses_a_max_norm_that_is_negative_or_nan(max_norm):
    m = sr.GRU(3, 4, seed=0)
    y, _ = m(np.ones((4, 2, 3), np.float32), train=True)
    m.backward(np.ones_like(y))
    before = m.grads()
    with pytest.raises(ValueError, match="max_norm"):
        sr.clip_grad_norm(m, max_norm)
    for k, v in m.grads().items():
        assert np.array_equal(v, before[k])


def test_streamrnn_imports_without_onnx_and_says_what_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r"pip install 'streamrnn\[onnx\]'"):
        sr.onnx.load("model.onnx")
