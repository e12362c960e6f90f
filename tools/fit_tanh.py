# tools/fit_tanh.py: the coefficients of the row kernels' tanh (cpp/src/kernels/row_kernels.cpp),
# tanh x = x P(x^2) / Q(x^2) on |x| <= 9, P of degree 5 and Q of degree 4 with P(0) = Q(0) = 1.
# Part of streamrnn, MIT licence.
"""Fits P/Q to tanh(x)/x by linearised least squares on the relative error (each pass divides by
the last pass's Q), then reweights the points by their error (Lawson) towards the minimax fit. The
variable is x^2 / 81 while fitting (the powers of x^2 up to 81^5 would make the system singular
in float64), and the printed coefficients are for x^2 itself, rounded to float32. Run:
python tools/fit_tanh.py (NumPy only; a few seconds)."""

import numpy as np

LIMIT = 9.0  # tanh is 1 in float32 past about 9.01
P_TERMS, Q_TERMS = 6, 5  # Q's constant term is 1


def fit() -> tuple[np.ndarray, np.ndarray, float]:
    x = np.sort(np.concatenate([np.linspace(1e-4, LIMIT, 20000), np.geomspace(1e-6, 1e-1, 2000)]))
    y = x * x / LIMIT**2
    target = np.tanh(x) / x
    powers_p = np.vstack([y**k for k in range(P_TERMS)]).T
    powers_q = np.vstack([y**k for k in range(1, Q_TERMS)]).T
    weight = np.ones_like(x)
    last_q = np.ones_like(x)
    for iteration in range(60):
        # P - target * (Q - 1) = target, relative to target and to the last pass's Q.
        system = np.hstack([powers_p, -target[:, None] * powers_q])
        scale = np.sqrt(weight) / (target * last_q)
        solution, *_ = np.linalg.lstsq(system * scale[:, None], target * scale, rcond=None)
        p, q = solution[:P_TERMS], np.concatenate([[1.0], solution[P_TERMS:]])
        last_q = powers_q @ q[1:] + 1.0
        error = np.abs((powers_p @ p) / last_q / target - 1.0)
        if iteration >= 10:
            weight = weight * np.sqrt(error / error.max()) + 1e-30
            weight /= weight.sum()
    return p, q, float(error.max())


def main() -> None:
    p, q, worst = fit()
    unscaled = lambda c: [np.float32(v / LIMIT ** (2 * k)) for k, v in enumerate(c)]  # noqa: E731
    print(f"relative error of the fit before rounding: {worst:.2e}")
    print("P:", ", ".join(f"{v:.8e}f" for v in unscaled(p)))
    print("Q:", ", ".join(f"{v:.8e}f" for v in unscaled(q)))


if __name__ == "__main__":
    main()
