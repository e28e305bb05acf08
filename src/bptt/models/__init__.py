"""The lecture's architecture types as models; each exposes ``loss_and_grads(batch)``."""
