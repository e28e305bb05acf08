"""What every model shares: named layers whose params and grads read as one dict.

A model's ``params`` are ``{"<layer>.<param>": array}``, the very arrays its
layers hold, so an optimizer that updates the dict in place updates the layers.
Names below a layer are PyTorch's (``rnn.weight_ih_l0``), so the recurrent
weights load straight into ``torch.nn.LSTM`` after stripping the prefix.
"""

from __future__ import annotations

import numpy as np

from bptt.errors import BpttError


class Model:
    """Base of the models: subclasses set ``self.layers`` (name -> layer)."""

    layers: dict

    @property
    def params(self) -> dict[str, np.ndarray]:
        return {f"{n}.{k}": v for n, layer in self.layers.items() for k, v in layer.params.items()}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return {f"{n}.{k}": v for n, layer in self.layers.items() for k, v in layer.grads.items()}

    def loss_count(self, batch) -> int:
        """How many terms the loss of ``loss_and_grads(batch)`` is the mean of (here: the
        batch's real tokens), so means over parts of a batch combine into the batch's mean."""
        return batch.num_tokens

    def num_parameters(self) -> int:
        return sum(v.size for v in self.params.values())

    def state_dict(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy weights in by name; missing, unexpected or misshapen names are refused."""
        own = self.params
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise BpttError(
                f"weights do not fit the model: missing {missing or 'none'}, "
                f"unexpected {unexpected or 'none'}"
            )
        for name, value in state.items():
            if value.shape != own[name].shape:
                raise BpttError(
                    f"weight {name} has shape {value.shape}, the model expects {own[name].shape}"
                )
        for name, value in state.items():
            np.copyto(own[name], value, casting="same_kind")
