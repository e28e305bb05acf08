"""The directional gradient check passes a right gradient and catches a wrong one."""

import numpy as np

from bptt.diagnostics import gradcheck_directions


def test_directional_check_on_a_quadratic():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 4))
    p = {"w": rng.standard_normal((4, 3))}

    def f():
        return float(np.sum((A @ p["w"]) ** 2))

    right = {"w": 2 * A.T @ A @ p["w"]}
    assert gradcheck_directions(f, p, right)["w"] < 1e-8
    wrong = {"w": right["w"] * np.where(np.arange(12).reshape(4, 3) == 5, 1.1, 1.0)}
    assert gradcheck_directions(f, p, wrong)["w"] > 1e-4
