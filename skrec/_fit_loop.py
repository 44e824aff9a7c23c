"""The epochs of every torch estimator's fit, written once.

An estimator hands ``run_epochs`` its trainer (anything with ``train_epoch()``,
``averaged_module``, a settable ``learning_rate``, ``step_hooks`` and
``data``), how to score the held-out data, and the scale of its loss; the loop
brings early stopping, the divergence check, Ctrl-C handling, the adaptive
learning rate, verbose lines and the fitted history attributes. It reads the
estimator's ``max_iter``, ``tol``, ``n_iter_no_change``, ``learning_rate``,
``learning_rate_init`` and ``verbose``, which every torch estimator has.
"""

import copy
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ._engine._progress import EpochProgress

# A training loss this many times that of a constant prediction means that
# training diverged, even while it stays finite: Adam's normalised steps keep
# the weights finite at learning rates that wreck the model.
DIVERGED_LOSS_FACTOR = 1_000
# Frames from a warning in ``run_epochs`` to the user's call of ``fit``:
# run_epochs, the estimator's _run_epochs, its fit body (two frames), the
# state keeper, ``fit`` and scikit-learn's fit-context wrapper.
STACKLEVEL = 8


def run_epochs(
    estimator, trainer, *, validation_score=None, loss_scale=1.0, constant_loss
):
    """Train epoch by epoch until early stopping, a stall or ``max_iter``.

    Parameters
    ----------
    estimator : object
        The estimator being fitted, for its parameters and name.
    trainer : Trainer
        Trains one epoch per ``train_epoch()`` call, returning its mean loss.
    validation_score : callable, default=None
        Returns the score (higher is better) of ``trainer.averaged_module`` on
        the held-out data; None fits without early stopping.
    loss_scale : float, default=1.0
        What the trainer's loss is multiplied by to read in the user's units
        (the variance of standardised ratings).
    constant_loss : float
        The loss of a constant prediction, in the user's units, against which
        a diverging loss is recognised.

    Returns
    -------
    history : History
        The losses and scores per epoch; the best epoch's weights are back in
        ``trainer.averaged_module`` when early stopping kept them.
    """
    history = History(early_stopping=validation_score is not None, tol=estimator.tol)
    progress = attach_progress(estimator, trainer)
    for epoch in range(1, estimator.max_iter + 1):
        start = time.perf_counter()
        if progress is not None:
            progress.start(epoch)
        try:
            loss = trainer.train_epoch() * loss_scale
        except KeyboardInterrupt:
            if not history.losses:
                raise  # nothing learned yet: the fit fails as a whole
            warnings.warn(
                f"Training interrupted by the user in epoch {epoch}; keeping the "
                "best weights so far.",
                UserWarning,
                stacklevel=STACKLEVEL,
            )
            break
        raise_if_diverged(estimator, loss, epoch, constant_loss)
        score = None if validation_score is None else validation_score()
        history.record(loss, score, trainer.averaged_module)
        if estimator.verbose:
            _print_epoch(epoch, loss, score, time.perf_counter() - start, trainer)
        if history.stalled_epochs > estimator.n_iter_no_change:
            if not _lower_learning_rate(estimator, trainer):
                break
            history.stalled_epochs = 0
    else:
        warnings.warn(
            f"{type(estimator).__name__} stopped at max_iter={estimator.max_iter} "
            "epochs before converging; raise max_iter.",
            ConvergenceWarning,
            stacklevel=STACKLEVEL,
        )
    history.restore_best(trainer.averaged_module)
    return history


def attach_progress(estimator, trainer):
    """With ``verbose``, an ``EpochProgress`` that the trainer calls after every
    step; None otherwise. Call its ``start(epoch)`` before each epoch."""
    if not estimator.verbose:
        return None
    progress = EpochProgress()
    trainer.step_hooks.append(progress)
    return progress


def raise_if_diverged(estimator, loss, epoch, constant_loss):
    """Raise ``FloatingPointError`` if ``loss`` is not finite or is over
    ``DIVERGED_LOSS_FACTOR`` times ``constant_loss``."""
    if not np.isfinite(loss):
        reason = f"the loss became {loss}"
    elif loss > DIVERGED_LOSS_FACTOR * constant_loss:
        reason = (
            f"the loss reached {loss:.3g}, over {DIVERGED_LOSS_FACTOR} times the "
            f"{constant_loss:.3g} of a constant prediction"
        )
    else:
        return
    raise FloatingPointError(
        f"Training diverged in epoch {epoch}: {reason}. Lower "
        f"learning_rate_init (now {estimator.learning_rate_init})."
    )


def set_fit_history(estimator, history):
    """Set the fitted history attributes, as ``MLPRegressor`` names them."""
    estimator.n_iter_ = len(history.losses)
    estimator.loss_curve_ = history.losses
    if history.early_stopping:
        estimator.validation_scores_ = history.scores
        estimator.best_validation_score_ = history.best
        estimator.best_loss_ = None
    else:
        estimator.validation_scores_ = None
        estimator.best_validation_score_ = None
        estimator.best_loss_ = -history.best


def _lower_learning_rate(estimator, trainer):
    """Divide the learning rate by 5 if the schedule allows; whether it did."""
    if estimator.learning_rate != "adaptive" or trainer.learning_rate / 5 < 1e-6:
        return False
    trainer.learning_rate /= 5
    if estimator.verbose:
        print(f"Learning rate lowered to {trainer.learning_rate:g}")
    return True


class History:
    """Per-epoch losses and scores, and the weights of the best epoch."""

    def __init__(self, early_stopping, tol):
        self.early_stopping = early_stopping
        self.tol = tol
        self.losses = []
        self.scores = []
        self.best = -np.inf
        self.best_state = None
        self.stalled_epochs = 0

    def record(self, loss, score, module):
        self.losses.append(loss)
        if self.early_stopping:
            self.scores.append(score)
        # Higher is better for both: the validation score, or the negated
        # training loss.
        value = score if self.early_stopping else -loss
        self.stalled_epochs = (
            0 if value > self.best + self.tol else self.stalled_epochs + 1
        )
        if value > self.best:
            self.best = value
            # Only early stopping goes back to the best weights.
            if self.early_stopping:
                self.best_state = copy.deepcopy(module.state_dict())

    def restore_best(self, module):
        if self.early_stopping and self.best_state is not None:
            module.load_state_dict(self.best_state)


def _print_epoch(epoch, loss, score, seconds, trainer):
    score_text = "" if score is None else f", validation score={score:.4f}"
    rate = len(trainer.data) / seconds if seconds > 0 else float("inf")
    print(
        f"Epoch {epoch}: loss={loss:.4f}{score_text}, {seconds:.2f}s, "
        f"{rate:,.0f} samples/s"
    )
