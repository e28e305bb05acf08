"""One module per application: data loading, model preset, metric."""
