"""What every skrec estimator shares: the fit protocol and the unknown-ID policy."""

import warnings

import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from ._encoding import build_vocabulary, encode_ids, raise_for_unknown
from ._engine._device import resolve_device
from ._engine._training import load_tensors, seeded
from ._sklearn_compat import _fit_context
from ._validation import column_label, validate_table
from ._version import PICKLE_FORMAT, __version__


class RecomputedOnFailure:
    """An attribute's value before a fit, computed again only if the fit fails."""

    def __init__(self, compute):
        self.compute = compute


class BaseRecommender(RegressorMixin, BaseEstimator):
    """Base class of the rating estimators; subclasses implement ``_fit``.

    Subclasses have the parameters ``user_col``, ``item_col`` and
    ``handle_unknown``, and set ``users_`` and ``items_`` in ``_fit``.
    """

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the model to the (user, item) rows of ``X`` and their targets ``y``.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            User IDs, item IDs and optional numeric side features.

        y : array-like of shape (n_samples,), default=None
            Ratings; for implicit-feedback models, optional weights of the
            interactions (None: every row weighs 1).

        Returns
        -------
        self : object
            The fitted estimator.

        Examples
        --------
        >>> from skrec import BaselineRecommender
        >>> X = [["ann", "up"], ["ann", "jaws"], ["bob", "up"], ["bob", "alien"]]
        >>> est = BaselineRecommender()
        >>> est.fit(X, [5, 3, 4, 1])
        BaselineRecommender()
        >>> est.users_
        array(['ann', 'bob'], dtype=object)
        >>> est.items_
        array(['alien', 'jaws', 'up'], dtype=object)
        """
        return self._keeping_state_on_failure(self._fit, X, y)

    def _keeping_state_on_failure(self, fit_method, X, y):
        """Run ``fit_method(X, y)``; if it raises, restore the previous state.

        During the call, ``self._state_before_fit`` is that state: a method
        may swap one of its values for a :class:`RecomputedOnFailure`, so that
        a large attribute that it replaced is freed instead of kept alive for
        a failure that rarely comes.
        """
        # Input validation sets n_features_in_ and feature_names_in_ as it goes,
        # and training may fail late: a failed fit must leave a previously
        # fitted model exactly as it was.
        previous_state = self.__dict__.copy()
        self._state_before_fit = previous_state
        try:
            fit_method(X, y)
        except BaseException:
            for name, value in previous_state.items():
                if isinstance(value, RecomputedOnFailure):
                    previous_state[name] = value.compute()
            self.__dict__.clear()
            self.__dict__.update(previous_state)
            raise
        del self._state_before_fit
        return self

    def _vocabularies(self, users, items):
        """The distinct user and item IDs of the fit data, sorted."""
        return (
            build_vocabulary(users, column_label(self, "user_col")),
            build_vocabulary(items, column_label(self, "item_col")),
        )

    def _encode_rows(self, X):
        """Check ``X`` against fit; return user codes, item codes and features."""
        check_is_fitted(self)
        users, items, features = validate_table(self, X, reset=False)[:3]
        user_codes = encode_ids(users, self.users_)
        item_codes = encode_ids(items, self.items_)
        if self.handle_unknown == "error":
            raise_for_unknown(users, user_codes, items, item_codes)
        return user_codes, item_codes, features

    def __getstate__(self):
        # A copy: outside scikit-learn's own modules, its __getstate__ hands
        # back the instance's live __dict__.
        state = dict(super().__getstate__())
        state["_skrec_pickle"] = {"version": __version__, "format": PICKLE_FORMAT}
        return state

    def __setstate__(self, state):
        saved = state.pop("_skrec_pickle", {"version": "unknown", "format": None})
        if saved["format"] != PICKLE_FORMAT:
            raise ValueError(
                f"This {type(self).__name__} was saved by skrec {saved['version']} "
                f"in pickle format {saved['format']}; skrec {__version__} reads "
                f"format {PICKLE_FORMAT} only. Load it with skrec "
                f"{saved['version']} and refit, or refit it with this version."
            )
        super().__setstate__(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # String IDs are supported, but scikit-learn's `string` tag would also
        # require accepting any object (a dict) as an ID; such IDs are a
        # TypeError here, which is what the tag's default pins.
        tags.input_tags.string = False
        return tags


class TorchStateMixin:
    """Pickling of an estimator whose fitted network is ``module_`` on
    ``device_``; subclasses build an untrained network with ``_empty_module()``.
    """

    def __getstate__(self):
        state = super().__getstate__()
        # The optimizer's moments only serve partial_fit; a loaded model's
        # partial_fit starts them afresh.
        state.pop("_optimizer_state", None)
        if "module_" in state:
            # The network travels as numpy arrays, which load on any device
            # and which skops.io can read without running pickled torch code.
            state["module_"] = {
                name: tensor.detach().cpu().numpy()
                for name, tensor in self.module_.state_dict().items()
            }
            state["device_"] = str(self.device_)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "module_" in state:
            self.device_ = _loadable_device(self.device_)
            # Building the network draws initial weights: that must not move
            # the caller's random state.
            with seeded(0, torch.device("cpu")):
                module = self._empty_module()
            self.module_ = load_tensors(module, self.module_).to(self.device_)


def _loadable_device(device):
    try:
        return resolve_device(device)
    except ValueError:
        warnings.warn(
            f"This model was fitted on {device}, which is not available here; it "
            "was loaded on the CPU.",
            UserWarning,
            stacklevel=3,
        )
        return resolve_device("cpu")
