"""bptt: recurrent neural networks from the equations up, in NumPy.

The tanh RNN, the LSTM and the GRU, trained by backpropagation through time
(BPTT) that is derived and written by hand. Layers live in ``bptt.nn``, the
math they call in ``bptt.functional``.
"""

__version__ = "0.1.0"
