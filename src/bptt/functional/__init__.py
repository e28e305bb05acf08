"""The math: pure functions on NumPy arrays, no classes, no I/O.

Every recurrent cell follows one contract (see ``rnn.py`` for the plainest):

    forward(x, state, weight_ih, weight_hh, bias_ih, bias_hh, mask=None)
        -> (outputs, final_state, cache)
    backward(d_outputs, d_final_state, cache)
        -> (d_x, d_initial_state, d_weights)

``state`` is a tuple of ``(B, H)`` arrays: ``(h,)`` for the RNN and the GRU,
``(h, c)`` for the LSTM. ``d_weights`` is a dict keyed like the weight
arguments (``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``). Every cache
holds the state history as ``"h"`` (T+1, B, H) (and ``"c"`` for the LSTM).

Each cell also has its step pair, ``*_step_forward(x_t, state, weights)`` and
``*_step_backward(d_state, cache)``, written from its equations. The sequence
functions run them in a plain loop (:mod:`bptt.functional.reference`) when
:func:`use_reference` is on (or ``BPTT_REFERENCE=1``), and otherwise take the
fast route (:mod:`bptt.functional.fast`), which gives the same numbers.
"""

from bptt.functional.reference import reference_on, use_reference

__all__ = ["reference_on", "use_reference"]
