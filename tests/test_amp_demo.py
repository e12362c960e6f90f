# tests/test_amp_demo.py
# The amp demo (`python -m streamrnn demo amp`): the shipped LSTM amp model streamed sample by sample
# and in blocks matches its whole-sequence output, and the demo writes its WAV (and, with
# matplotlib, its plot). Part of streamrnn, MIT licence.
import wave
from importlib import resources

import numpy as np
import pytest

from streamrnn._amp_demo import amp_demo


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("amp_demo")
    return amp_demo(str(out), block_sizes=(32, 512)), out


def test_amp_demo_matches_and_writes_the_wav(demo_run):
    code, out = demo_run
    assert code == 0
    with resources.as_file(resources.files("streamrnn") / "data" / "amp_signal.npy") as path:
        samples = np.load(path).shape[-1]
    with wave.open(str(out / "amp_out.wav"), "rb") as wav:
        assert wav.getframerate() == 48000
        assert wav.getnchannels() == 1
        assert wav.getsampwidth() == 2
        assert wav.getnframes() == samples


def test_amp_demo_writes_the_plot(demo_run):
    pytest.importorskip("matplotlib")
    code, out = demo_run
    assert code == 0
    png = out / "amp_demo.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
