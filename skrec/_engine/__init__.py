"""The torch engine: modules, training and prediction on tensors.

Nothing in this package knows about pandas or scikit-learn: the estimator layer
hands it integer codes and float arrays, and gets arrays back.
"""
