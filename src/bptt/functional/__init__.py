"""The math: pure functions on NumPy arrays, no classes, no I/O.

Every recurrent cell follows one contract (see ``rnn.py`` for the plainest):

    forward(x, state, weight_ih, weight_hh, bias_ih, bias_hh, mask=None)
        -> (outputs, final_state, cache)
    backward(d_outputs, d_final_state, cache)
        -> (d_x, d_initial_state, d_weights)

``state`` is a tuple of ``(B, H)`` arrays: ``(h,)`` for the RNN and the GRU,
``(h, c)`` for the LSTM. ``d_weights`` is a dict keyed like the weight
arguments (``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``).
"""
