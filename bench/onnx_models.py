# bench/onnx_models.py: ONNX graphs built by hand from a streamrnn model, and an ONNX Runtime stream.
# Part of streamrnn, MIT licence.
"""ONNX twins of streamrnn's LSTM, GRU and RNN, for the benchmark suite and as an interop check.

`to_onnx(model, T, B)` writes the ONNX LSTM/GRU/RNN operators with onnx.helper (no
torch.onnx.export, so the graph is one recurrent operator per layer and a Squeeze between them,
nothing else to time). `OrtStream` runs such a graph with IO binding to preallocated NumPy
buffers, feeding each call's final state back as the next call's initial state, or starting
each call from zeros. Layout: x [T, B, I] time-major; per layer l, inputs h0_l{l} (and an
LSTM's c0_l{l}) [1, B, H]; outputs y [T, B, H] and hn_l{l} (cn_l{l}) [1, B, H].
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import streamrnn as sr

OPSET = 17


def _kind(model) -> str:
    for kind in ("LSTM", "GRU", "RNN"):
        if isinstance(model, getattr(sr, kind)):
            return kind
    raise TypeError(f"model: expected streamrnn.LSTM, GRU or RNN, got {type(model).__name__}")


def to_onnx(model, T: int, B: int) -> onnx.ModelProto:
    """The ONNX graph of a unidirectional, non-residual streamrnn layer stack, with its weights
    and its peepholes, clip and input_forget (ONNX's cell options; not other activations).

    T, B: the sequence length and batch the graph's shapes fix."""
    kind = _kind(model)
    unsupported = [name for name in ("bidirectional", "residual", "activations") if getattr(model, name)]
    if kind == "LSTM" and model.proj_size:
        unsupported.append("proj_size")
    if unsupported:
        raise ValueError(f"model: the ONNX twin covers plain stacks only, got {', '.join(unsupported)}")
    I, H, L = model.input_size, model.hidden_size, model.num_layers
    G = {"LSTM": 4, "GRU": 3, "RNN": 1}[kind]

    def value(name: str, *shape) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))

    inputs, outputs, nodes, initializers = [value("x", T, B, I)], [], [], []
    # Squeeze takes its axes as an input from opset 13; this drops Y's num_directions axis.
    initializers.append(numpy_helper.from_array(np.array([1], np.int64), "axis1"))

    def tensor(name: str, array: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name))
        return name

    layer_input = "x"
    for l in range(L):
        W, R, bias = sr.onnx.node_weights(model, l, 0)  # in ONNX's gate order
        w, r = tensor(f"W_l{l}", W[None]), tensor(f"R_l{l}", R[None])
        b = tensor(f"B_l{l}", (bias if bias is not None else np.zeros(2 * G * H, np.float32))[None])
        inputs.append(value(f"h0_l{l}", 1, B, H))
        outputs.append(value(f"hn_l{l}", 1, B, H))
        # Operator inputs: X, W, R, B, sequence_lens (none), initial_h[, initial_c].
        node_inputs = [layer_input, w, r, b, "", f"h0_l{l}"]
        node_outputs = [f"Y_l{l}", f"hn_l{l}"]
        attributes = {"hidden_size": H}
        if model.clip is not None:
            attributes["clip"] = model.clip
        if kind == "LSTM":
            inputs.append(value(f"c0_l{l}", 1, B, H))
            outputs.append(value(f"cn_l{l}", 1, B, H))
            node_inputs.append(f"c0_l{l}")
            node_outputs.append(f"cn_l{l}")
            if model.peepholes:  # ONNX's P: rows i, o, f; streamrnn's: i, f, o
                node_inputs.append(tensor(f"P_l{l}", model.state_dict()[f"weight_peephole_l{l}"][[0, 2, 1]].reshape(1, -1)))
            if model.input_forget:
                attributes["input_forget"] = 1
        elif kind == "GRU":
            # PyTorch's GRU applies the reset gate after the recurrent product: ONNX's
            # linear_before_reset=1. Cho et al.'s (reset_after=False) is ONNX's default, 0.
            attributes["linear_before_reset"] = int(model.reset_after)
        else:
            attributes["activations"] = ["Tanh" if model.nonlinearity == "tanh" else "Relu"]
        nodes.append(helper.make_node(kind, node_inputs, node_outputs, name=f"{kind.lower()}_l{l}", **attributes))
        layer_input = "y" if l == L - 1 else f"y_l{l}"
        nodes.append(helper.make_node("Squeeze", [f"Y_l{l}", "axis1"], [layer_input]))
    outputs.insert(0, value("y", T, B, H))
    graph = helper.make_graph(nodes, f"streamrnn_{kind.lower()}", inputs, outputs, initializers)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                   producer_name="streamrnn bench")
    onnx.checker.check_model(onnx_model)
    return onnx_model


def session(onnx_model: onnx.ModelProto, threads: int = 1):
    """An ONNX Runtime CPU session with `threads` intra-op threads and one inter-op thread."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle workers that spin between runs take the cores that the contenders timed between ORT's
    # runs need: on 2 cores they made PyTorch's 2-thread sequences over 100x slower. Alone, ORT
    # loses under 10% without spinning.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(onnx_model.SerializeToString(), options, providers=["CPUExecutionProvider"])


class OrtStream:
    """Runs a `to_onnx` graph on fixed-shape chunks x [T, B, I], from a zero state or carrying it.

    Two buffer sets hold the state. With carry, a call reads one and writes the other and the next
    call swaps them, so no call copies a state; without, every call reads the zero set. The
    bindings are made once, here, to these NumPy buffers; `run` only calls run_with_iobinding.
    Write the next chunk into `x` in place, read `y` after run."""

    def __init__(self, sess, kind: str, num_layers: int, T: int, B: int, I: int, H: int,
                 carry: bool = True) -> None:
        self.sess = sess
        self.x = np.zeros((T, B, I), np.float32)
        self.y = np.zeros((T, B, H), np.float32)
        names = [f"{n}_l{l}" for l in range(num_layers) for n in (("h", "c") if kind == "LSTM" else ("h",))]
        self.states = [{name: np.zeros((1, B, H), np.float32) for name in names} for _ in range(2)]
        self.turns = ((0, 1), (1, 0)) if carry else ((0, 1),)  # (read set, written set) per call
        self.bindings = []
        for read, write in self.turns:
            binding = sess.io_binding()
            binding.bind_cpu_input("x", self.x)
            _bind_output(binding, "y", self.y)
            for name in names:
                state, layer = name.split("_")
                binding.bind_cpu_input(f"{state}0_{layer}", self.states[read][name])
                _bind_output(binding, f"{state}n_{layer}", self.states[write][name])
            self.bindings.append(binding)
        self.turn = 0

    def run(self) -> None:
        self.sess.run_with_iobinding(self.bindings[self.turn])
        self.turn = (self.turn + 1) % len(self.turns)

    def reset(self) -> None:
        for state in self.states:
            for array in state.values():
                array[...] = 0.0
        self.turn = 0

    def state(self, name: str) -> np.ndarray:
        """The state `name` ("h_l0", "c_l1", ...) after the last run, [1, B, H]: a view into a buffer."""
        return self.states[self.turns[self.turn - 1][1]][name]


def _bind_output(binding, name: str, array: np.ndarray) -> None:
    binding.bind_output(name, "cpu", 0, np.float32, list(array.shape), array.ctypes.data)
