# tests/test_nam.py: sr.load_nam against PyTorch: Neural Amp Modeler LSTM .nam files, written here as
# NAM's exporter lays them out, loaded and run whole, streamed, reset, saved; and the files it
# refuses. Part of streamrnn, MIT licence.
import json

import numpy as np
import pytest
import torch

import streamrnn as sr
from conftest import assert_close, assert_identical, randn, rng_for

SAMPLE_RATE = 48000.0
METADATA = {"date": {"year": 2024, "month": 5, "day": 1, "hour": 12, "minute": 0, "second": 0},
            "loudness": -18.25, "gain": 0.5, "name": "Test amp", "modeled_by": None, "gear_type": "amp",
            "training": {"settings": {"ignore_checks": False}, "data": {"latency": {"manual": None}}}}


class NamLSTM(torch.nn.Module):
    """NAM's LSTM model (nam/models/recurrent.py, LSTM): torch.nn.LSTM(input_size, H, L,
    batch_first=True), a Linear(H, 1) head on every step, and a learned initial state (L, H)."""

    def __init__(self, input_size, hidden_size, num_layers, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.core = torch.nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)
        self.head = torch.nn.Linear(hidden_size, 1)
        self.h0 = torch.nn.Parameter(0.5 * torch.randn(num_layers, hidden_size))
        self.c0 = torch.nn.Parameter(0.5 * torch.randn(num_layers, hidden_size))

    def forward(self, x):
        """x (B, T, I) -> (B, T, 1), every row started from (h0, c0)."""
        B = x.shape[0]
        state = (self.h0[:, None].repeat(1, B, 1).contiguous(), self.c0[:, None].repeat(1, B, 1).contiguous())
        return self.head(self.core(x, state)[0])


def nam_weights(model):
    """The flat weights in the order of NAM's nam/models/recurrent.py (LSTM._export_weights and
    _export_cell_weights), which NeuralAmpModelerCore's NAM/lstm.cpp reads back: per layer
    [W_ih | W_hh] row-major, b_ih + b_hh, the initial h, the initial c; then the head's weight and
    bias. NAM writes there the state its LSTM reaches after a burn-in on silence; the test writes
    the model's own (h0, c0), which is what a loader must start from either way."""
    core, parts = model.core, []
    for k in range(core.num_layers):
        w = torch.cat([getattr(core, f"weight_ih_l{k}"), getattr(core, f"weight_hh_l{k}")], dim=1)
        b = getattr(core, f"bias_ih_l{k}") + getattr(core, f"bias_hh_l{k}")
        parts += [w.flatten(), b, model.h0[k], model.c0[k]]
    parts += [model.head.weight.flatten(), model.head.bias]
    return torch.cat(parts).detach().numpy().astype(np.float64).tolist()


def nam_document(model, sample_rate=SAMPLE_RATE, metadata=None):
    """The file's JSON object, with the keys of nam/models/exportable.py (_get_export_dict) and
    nam/models/_base.py (sample_rate)."""
    return {"version": "0.5.4", "metadata": dict(METADATA if metadata is None else metadata),
            "architecture": "LSTM",
            "config": {"input_size": model.core.input_size, "hidden_size": model.core.hidden_size,
                       "num_layers": model.core.num_layers},
            "weights": nam_weights(model), "sample_rate": sample_rate}


def write(tmp_path, document, name="model.nam"):
    path = tmp_path / name
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    return path


def reference(model, x):
    """PyTorch's output for time-major x (T, B, I) -> (T, B, 1)."""
    with torch.no_grad():
        y = model(torch.from_numpy(np.ascontiguousarray(x.transpose(1, 0, 2))))
    return y.numpy().transpose(1, 0, 2)


CASES = [(1, 8, 1), (1, 12, 2), (3, 5, 3)]  # (input_size, hidden_size, num_layers)


@pytest.fixture(params=CASES, ids=lambda c: "I{}-H{}-L{}".format(*c))
def case(request, tmp_path):
    I, H, L = request.param
    model = NamLSTM(I, H, L, seed=I * 100 + H * 10 + L)
    return model, sr.load_nam(write(tmp_path, nam_document(model)))


def test_whole_sequences_equal_pytorch(case):
    model, m = case
    I = model.core.input_size
    rng = rng_for("nam whole", I, model.core.hidden_size, model.core.num_layers)
    x = randn(rng, 40, 3, I)
    y, _ = m(x)
    assert_close(y, reference(model, x), what="y (T, B, 1)")
    y1, _ = m(x[:, 0])
    assert_close(y1, reference(model, x[:, :1])[:, 0], what="unbatched y (T, 1)")


def test_the_model_is_an_lstm_and_a_head(case):
    model, m = case
    lstm, head = m.blocks
    assert isinstance(lstm, sr.LSTM) and isinstance(head, sr.Linear)
    assert (lstm.input_size, lstm.hidden_size, lstm.num_layers) == (model.core.input_size, model.core.hidden_size,
                                                                    model.core.num_layers)
    h0, c0 = lstm.initial_state
    assert_identical(h0, model.h0.detach().numpy(), "initial h")
    assert_identical(c0, model.c0.detach().numpy(), "initial c")


def test_streaming_sample_by_sample_equals_pytorch(case):
    model, m = case
    rng = rng_for("nam stream", model.core.input_size, model.core.hidden_size)
    x = randn(rng, 50, 1, model.core.input_size)
    s = m.stream(1)
    y = np.stack([s.step(x_t[0]) for x_t in x])
    assert_close(y, reference(model, x)[:, 0], what="streamed y")


def test_reset_returns_to_the_files_initial_state(case):
    model, m = case
    rng = rng_for("nam reset", model.core.input_size, model.core.hidden_size)
    x = randn(rng, 20, 1, model.core.input_size)
    s = m.stream(1)
    first = np.stack([s.step(x_t[0]) for x_t in x])
    s.process(randn(rng, 7, 1, model.core.input_size))  # somewhere else
    s.reset()
    again = np.stack([s.step(x_t[0]) for x_t in x])
    assert_identical(again, first, "outputs after reset")
    assert_close(first, reference(model, x)[:, 0], what="outputs from the start")


def test_metadata_keeps_the_files_entries_sample_rate_and_version(case):
    _, m = case
    md = m.metadata
    assert md["sample_rate"] == "48000.0"
    assert float(md["sample_rate"]) == SAMPLE_RATE
    assert md["nam_version"] == "0.5.4"
    assert md["name"] == "Test amp" and md["gear_type"] == "amp"
    assert json.loads(md["loudness"]) == -18.25 and json.loads(md["gain"]) == 0.5
    assert json.loads(md["date"]) == METADATA["date"]
    assert json.loads(md["training"]) == METADATA["training"]
    assert "modeled_by" not in md  # null entries are left out
    assert all(isinstance(v, str) for v in md.values())


def test_save_and_load_keep_outputs_and_metadata(case, tmp_path):
    model, m = case
    path = tmp_path / "model.safetensors"
    m.save(path)
    m2 = sr.load(path)
    assert m2.metadata == m.metadata
    rng = rng_for("nam save", model.core.input_size)
    x = randn(rng, 16, 2, model.core.input_size)
    assert_identical(m2(x)[0], m(x)[0], "y after save and load")
    s = m2.stream(1)
    y = np.stack([s.step(x_t[0]) for x_t in x])
    assert_close(y, reference(model, x)[:, 0], what="streamed y after save and load (initial state kept)")


def test_a_file_without_sample_rate_or_metadata_loads(tmp_path):
    model = NamLSTM(1, 4, 1, seed=7)
    document = nam_document(model, sample_rate=None)
    del document["metadata"]
    m = sr.load_nam(write(tmp_path, document))
    assert m.metadata == {"nam_version": "0.5.4"}


def test_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        sr.load_nam(tmp_path / "absent.nam")


@pytest.mark.parametrize("architecture", ["WaveNet", "ConvNet", "Linear", "CatLSTM"])
def test_other_architectures_are_refused(tmp_path, architecture):
    document = {"version": "0.5.4", "architecture": architecture, "config": {"layers": []}, "weights": [0.0],
                "sample_rate": SAMPLE_RATE, "metadata": {}}
    with pytest.raises(ValueError, match=f"{architecture}.*only.*LSTM"):
        sr.load_nam(write(tmp_path, document))


def _valid():
    return nam_document(NamLSTM(1, 4, 2, seed=3))


def _truncated(d):
    return json.dumps(d)[:-40]


def _short(d):
    return dict(d, weights=d["weights"][:-1])


def _long(d):
    return dict(d, weights=d["weights"] + [0.0])


def _string_weight(d):
    return dict(d, weights=d["weights"][:5] + ["0.5"] + d["weights"][6:])


def _no_config(d):
    return {k: v for k, v in d.items() if k != "config"}


def _bad_size(d):
    return dict(d, config=dict(d["config"], hidden_size="4"))


def _zero_layers(d):
    return dict(d, config=dict(d["config"], num_layers=0))


def _huge_num_layers(d):
    return dict(d, config=dict(d["config"], num_layers=10**12))


def _weights_not_a_list(d):
    return dict(d, weights={"0": 1.0})


def _nested_weights(d):
    return dict(d, weights=[d["weights"]])


def _bool_weight(d):
    return dict(d, weights=[True] + d["weights"][1:])


def _huge_weight(d):
    return json.dumps(dict(d, weights=[1e39] + d["weights"][1:]))


def _nan_weight(d):
    return json.dumps(dict(d, weights=["NAN"] + d["weights"][1:])).replace('"NAN"', "NaN")


def _no_version(d):
    return {k: v for k, v in d.items() if k != "version"}


def _bad_sample_rate(d):
    return dict(d, sample_rate="48k")


def _bad_metadata(d):
    return dict(d, metadata=[1, 2])


def _not_an_object(d):
    return [d]


def _not_json(d):
    return "\x89NAM\x00 binary"


MALFORMED = {
    "truncated JSON": (_truncated, "JSON"),
    "weights too short": (_short, r"expected \d+ numbers.*got \d+"),
    "weights too long": (_long, r"expected \d+ numbers.*got \d+"),
    "a string among the weights": (_string_weight, r"weights\[5\]"),
    "no config": (_no_config, "config"),
    "a size not an integer": (_bad_size, "hidden_size"),
    "no layers": (_zero_layers, "num_layers"),
    "a huge num_layers": (_huge_num_layers, r"expected \d+ numbers.*num_layers 1000000000000"),
    "weights not a list": (_weights_not_a_list, "weights"),
    "weights nested": (_nested_weights, r"weights\[0\]"),
    "a bool among the weights": (_bool_weight, r"weights\[0\]"),
    "a weight beyond float32": (_huge_weight, "float32"),
    "NaN among the weights": (_nan_weight, "JSON"),
    "no version": (_no_version, "version"),
    "sample_rate not a number": (_bad_sample_rate, "sample_rate"),
    "metadata not an object": (_bad_metadata, "metadata"),
    "not an object": (_not_an_object, "object"),
    "not JSON": (_not_json, "JSON"),
}


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_malformed_files_raise_value_error(tmp_path, kind):
    make, message = MALFORMED[kind]
    path = write(tmp_path, make(_valid()))
    with pytest.raises(ValueError, match=message):
        sr.load_nam(path)


def test_the_weight_count_error_names_expected_and_got(tmp_path):
    d = _valid()
    n = len(d["weights"])
    with pytest.raises(ValueError) as info:
        sr.load_nam(write(tmp_path, dict(d, weights=d["weights"][:-3])))
    assert f"expected {n} " in str(info.value) and f"got {n - 3}" in str(info.value)
