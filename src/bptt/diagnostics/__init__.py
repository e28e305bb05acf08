"""Gradient checking and, later, gradient flow through time."""
