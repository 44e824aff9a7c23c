"""Softmax losses over a catalog: states scored against every row of an
output table, or against rows sampled per batch.

Each loss takes ``(states, targets, table, sampler)``: the states of shape
``(n, dim)``, the 0-based rows of ``table`` that are their targets, the output
table of shape ``(n_items, dim)``, and an ``ItemSampler``; it returns one loss
per state.
"""

import numpy as np
import torch


class ItemSampler:
    """Draws item codes for the sampled losses.

    ``shared()`` draws ``n_negatives`` rows per batch, shared by every state,
    in proportion to ``counts`` (plus one, so that every row can be drawn),
    or uniformly if ``by_frequency`` is False; ``uniform(n)`` draws ``n`` rows
    uniformly.

    On a small catalog uniform draws can teach more: frequency draws give a
    rare item a large log-Q weight on the few steps that draw it, and the
    item's updates are then noisy.
    """

    def __init__(self, counts, n_negatives, generator, by_frequency=True):
        counts = counts.double() + 1.0
        if not by_frequency:
            counts = torch.ones_like(counts)
        self.probabilities = (counts / counts.sum()).float()
        self.log_probabilities = self.probabilities.log()
        self.n_negatives = n_negatives
        self.generator = generator

    def shared(self):
        """``n_negatives`` output rows, with replacement."""
        return torch.multinomial(
            self.probabilities,
            self.n_negatives,
            replacement=True,
            generator=self.generator,
        )

    def uniform(self, n):
        return torch.randint(
            0,
            len(self.probabilities),
            (n,),
            generator=self.generator,
            device=self.probabilities.device,
        )


def full_softmax(states, targets, table, sampler=None, owners=None):
    """Cross-entropy over every row of the table, one loss per target.

    ``owners``, if given, holds each target's row of ``states``: targets that
    share a state (the items of one user in a batch) share its logits, which
    are then computed once. By default target ``k`` belongs to state ``k``.
    """
    return _SoftmaxCrossEntropy.apply(states, table, targets, owners)


class _SoftmaxCrossEntropy(torch.autograd.Function):
    """``cross_entropy(states @ table.T, targets, reduction="none")`` on one
    positions x items buffer.

    The logits are the largest tensor of a step; autograd's composition
    allocates four of their size (logits, log-softmax, and the gradients of
    each), and large fresh allocations cost page faults on the CPU. Here the
    logits become the softmax in place, and the softmax the gradient.
    """

    @staticmethod
    def forward(ctx, states, table, targets, owners=None):
        probabilities = states @ table.T
        if owners is None:
            target_logits = probabilities.gather(1, targets[:, None]).squeeze(1)
        else:
            target_logits = probabilities[owners, targets]
        largest = probabilities.max(dim=1).values
        probabilities.sub_(largest[:, None]).exp_()
        sums = probabilities.sum(dim=1)
        probabilities.div_(sums[:, None])
        ctx.save_for_backward(states, table, targets, probabilities)
        ctx.owners = owners
        log_sums = largest + sums.log()
        return (log_sums if owners is None else log_sums[owners]) - target_logits

    @staticmethod
    def backward(ctx, grad):
        states, table, targets, gradient = ctx.saved_tensors
        owners = ctx.owners
        if owners is None:
            # d loss / d logits = softmax - one-hot(target), per position.
            gradient[torch.arange(len(targets), device=targets.device), targets] -= 1.0
            gradient.mul_(grad[:, None])
        else:
            # Each state's softmax counts once per target it owns.
            scale = grad.new_zeros(len(states)).index_add_(0, owners, grad)
            gradient.mul_(scale[:, None])
            gradient.index_put_((owners, targets), -grad, accumulate=True)
        return gradient @ table, gradient.T @ states, None, None


def sampled_softmax(states, targets, table, sampler):
    """Cross-entropy over each state's target and negatives shared by the
    batch, with the log-Q correction of their sampling frequency and the
    negatives that hit the state's own target left out (Jean et al., 2015;
    Yi et al., 2019)."""
    negatives = sampler.shared()
    positive = (states * table[targets]).sum(dim=1)
    negative = states @ table[negatives].T
    return sampled_cross_entropy(positive, negative, targets, negatives, sampler)


def sampled_cross_entropy(positive, negative, targets, negatives, sampler):
    """The loss of ``sampled_softmax`` given the logits: ``positive`` of shape
    ``(n,)`` for the targets and ``negative`` of shape ``(n, n_negatives)`` for
    the rows ``negatives`` that ``sampler.shared()`` drew.

    Scorers that are no dot product (an MLP on the pair) compute their own
    logits and share the correction and the masking.
    """
    log_q = sampler.log_probabilities + np.log(sampler.n_negatives)
    positive = positive - log_q[targets]
    negative = negative - log_q[negatives]
    negative = negative.masked_fill(negatives[None, :] == targets[:, None], -torch.inf)
    logits = torch.cat([positive[:, None], negative], dim=1)
    return torch.logsumexp(logits, dim=1) - positive
