# tests/test_models.py
# The tutorial models learn small tasks the test generates, save and load; a GRU learns to remember.
# Part of streamrnn, MIT licence.
import numpy as np
import pytest

import streamrnn as sr


def _contains_five(rng, B=32, T=12):
    """Token sequences padded with 0; label 1 when token 5 occurs within the length."""
    lengths = rng.integers(4, T + 1, B)
    tokens = rng.integers(1, 10, (B, T))
    tokens[tokens == 5] = 6
    labels = rng.random(B) < 0.5
    for b in range(B):
        if labels[b]:
            tokens[b, rng.integers(0, lengths[b])] = 5
        tokens[b, lengths[b]:] = 0
    return tokens, labels.astype(np.int64), lengths


def _reversal(rng, B=32):
    """src: 3-5 tokens from 3..12 padded with 0; tgt: the same reversed, then eos (2), padded."""
    L = rng.integers(3, 6, B)
    src, tgt = np.zeros((B, 5), np.int64), np.zeros((B, 6), np.int64)
    for b in range(B):
        s = rng.integers(3, 13, L[b])
        src[b, :L[b]] = s
        tgt[b, :L[b]] = s[::-1]
        tgt[b, L[b]] = 2
    return src, tgt, L


TEXT = "the cat sat on the mat. the dog sat on the log. " * 20
CHARS = sorted(set(TEXT))
IDS = np.array([CHARS.index(c) for c in TEXT])


def _text_batch(rng, B=16, T=32):
    starts = rng.integers(0, len(IDS) - T - 1, B)
    return np.stack([IDS[s:s + T + 1] for s in starts])


def test_lstm_classifier_learns_whether_a_token_occurs():
    rng = np.random.default_rng(0)
    model = sr.models.LSTMClassifier(10, 16, 24, 2, dropout=0.1, lr=1e-2, seed=0)
    first = model.train_step(_contains_five(rng))
    for _ in range(150):
        loss = model.train_step(_contains_five(rng))
    tokens, labels, lengths = _contains_five(rng, 256)
    assert first > 0.5 and loss < 0.05  # chance is ln 2 = 0.69
    assert (model.predict(tokens, lengths) == labels).mean() > 0.95


def test_a_unidirectional_classifier_streams_the_logits_of_the_tokens_so_far():
    model = sr.models.LSTMClassifier(10, 4, 6, 3, bidirectional=False, dropout=0.0, seed=2)
    tokens = np.random.default_rng(4).integers(1, 10, (2, 7))
    stream = model.stream(2)
    for t in range(7):
        logits = stream.step(tokens[:, t])
    np.testing.assert_allclose(logits, model.forward(tokens), atol=1e-5)
    with pytest.raises(ValueError, match="bidirectional"):
        sr.models.LSTMClassifier(10, 4, 6, 3, seed=2).stream()


def test_seq2seq_learns_to_reverse_and_decodes_greedily():
    rng = np.random.default_rng(1)
    model = sr.models.Seq2Seq(13, 13, 16, 48, lr=1e-2, teacher_forcing=0.5, seed=0)
    for _ in range(400):
        loss = model.train_step(_reversal(rng))
    src, tgt, lengths = _reversal(rng, 200)
    exact = np.mean([out == list(src[b, :lengths[b]][::-1])
                     for b, out in enumerate(model.translate(src, lengths=lengths))])
    assert loss < 0.4  # chance over 11 tokens is ln 11 = 2.4 nats
    assert exact > 0.6


def test_language_model_learns_its_text_and_generates_it_by_streaming():
    rng = np.random.default_rng(2)
    model = sr.models.LanguageModel(len(CHARS), 16, 64, lr=1e-2, seed=0)
    for _ in range(200):
        loss = model.train_step(_text_batch(rng))
    assert loss < 0.3  # the text is nearly deterministic; chance is ln 15 = 2.7 nats
    generated = "".join(CHARS[i] for i in model.generate([CHARS.index("t")], 40, temperature=0))
    assert "sat on the" in generated
    eos = CHARS.index(".")
    sample = model.generate([CHARS.index("t")], 200, temperature=1.0, eos=eos)
    assert sample[-1] == eos and len(sample) < 200


@pytest.mark.parametrize("make", [
    lambda: sr.models.LSTMClassifier(10, 4, 6, 3, seed=1),
    lambda: sr.models.Seq2Seq(7, 8, 4, 6, num_layers=2, seed=1),
    lambda: sr.models.LanguageModel(9, 4, 6, num_layers=2, dropout=0.2, seed=1),
])
def test_a_model_saves_and_loads_to_the_same_class_and_weights(tmp_path, make):
    model = make()
    model.save(tmp_path / "model.safetensors")
    for loaded in (sr.load(tmp_path / "model.safetensors"), type(model).load(tmp_path / "model.safetensors")):
        assert type(loaded) is type(model)
        ours = model.state_dict()
        assert sorted(loaded.state_dict()) == sorted(ours)
        for name, value in loaded.state_dict().items():
            np.testing.assert_array_equal(value, ours[name])


def test_a_composite_file_is_refused_by_the_single_model_loader_and_vice_versa(tmp_path):
    sr.models.LanguageModel(5, 3, 4).save(tmp_path / "lm.safetensors")
    sr.GRU(3, 4).save(tmp_path / "gru.safetensors")
    with pytest.raises(ValueError, match="LanguageModel"):
        sr.models.LSTMClassifier.load(tmp_path / "lm.safetensors")
    with pytest.raises(ValueError, match="composite"):
        sr.models.load(tmp_path / "gru.safetensors")


def test_a_composite_state_dict_is_strict_and_a_refused_load_changes_nothing():
    model = sr.models.LanguageModel(5, 3, 4, seed=0)
    before = model.state_dict()
    bad = dict(before)
    bad["head.weight"] = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match="head"):
        model.load_state_dict(bad)
    with pytest.raises(ValueError, match="unexpected"):
        model.load_state_dict(dict(before, **{"extra.weight": before["head.weight"]}))
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_a_gru_learns_to_remember_its_first_input_past_chance():
    """The memory task: T steps of random one-hot tokens; at the end, name the first token. Only
    a state that carries it through T - 1 distracting steps does better than chance (1/K)."""
    K, T, B = 4, 10, 32
    rng = np.random.default_rng(3)
    gru, head = sr.GRU(K, 24, batch_first=True, seed=0), sr.Linear(24, K, seed=0)
    opt = sr.optim.Adam([gru, head], lr=2e-2)

    def batch(n):
        tokens = rng.integers(0, K, (n, T))
        return np.eye(K, dtype=np.float32)[tokens], tokens[:, 0]

    for _ in range(250):
        x, first = batch(B)
        opt.zero_grad()
        y, _ = gru(x, train=True)
        loss, dlogits = sr.cross_entropy(head(y[:, -1], train=True), first)
        dy = np.zeros_like(y)
        dy[:, -1] = head.backward(dlogits)
        gru.backward(dy)
        sr.clip_grad_norm([gru, head], 1.0)
        opt.step()
    x, first = batch(500)
    y, _ = gru(x)
    accuracy = (np.argmax(head(y[:, -1]), axis=-1) == first).mean()
    assert accuracy > 0.9, f"accuracy {accuracy:.2f}; chance is {1 / K:.2f}"
