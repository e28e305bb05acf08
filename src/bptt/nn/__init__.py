"""Parameter holders over ``bptt.functional``: params and grads are dicts with the same keys."""
