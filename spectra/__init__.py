"""spectra — eigenspectra of Kronecker-factored gradient covariances during training (not the PyPI colour library)."""
