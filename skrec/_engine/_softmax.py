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
    in proportion to ``counts`` (plus one, so that every row can be drawn);
    ``uniform(n)`` draws ``n`` rows uniformly.
    """

    def __init__(self, counts, n_negatives, generator):
        counts = counts.double() + 1.0
        self.probabilities = (counts / counts.sum()).float()
        self.log_probabilities = self.probabilities.log()
        self.n_negatives = n_negatives
        self.generator = generator

    def shared(self):
        """``n_negatives`` output rows drawn by frequency, with replacement."""
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


def full_softmax(states, targets, table, sampler=None):
    """Cross-entropy over every row of the table, one loss per state."""
    return _SoftmaxCrossEntropy.apply(states, table, targets)


class _SoftmaxCrossEntropy(torch.autograd.Function):
    """``cross_entropy(states @ table.T, targets, reduction="none")`` on one
    positions x items buffer.

    The logits are the largest tensor of a step; autograd's composition
    allocates four of their size (logits, log-softmax, and the gradients of
    each), and large fresh allocations cost page faults on the CPU. Here the
    logits become the softmax in place, and the softmax the gradient.
    """

    @staticmethod
    def forward(ctx, states, table, targets):
        probabilities = states @ table.T
        target_logits = probabilities.gather(1, targets[:, None]).squeeze(1)
        largest = probabilities.max(dim=1).values
        probabilities.sub_(largest[:, None]).exp_()
        sums = probabilities.sum(dim=1)
        probabilities.div_(sums[:, None])
        ctx.save_for_backward(states, table, targets, probabilities)
        return largest + sums.log() - target_logits

    @staticmethod
    def backward(ctx, grad):
        states, table, targets, gradient = ctx.saved_tensors
        # d loss / d logits = softmax - one-hot(target), per position.
        gradient[torch.arange(len(targets), device=targets.device), targets] -= 1.0
        gradient.mul_(grad[:, None])
        return gradient @ table, gradient.T @ states, None


def sampled_softmax(states, targets, table, sampler):
    """Cross-entropy over each state's target and negatives shared by the
    batch, with the log-Q correction of their sampling frequency and the
    negatives that hit the state's own target left out (Jean et al., 2015;
    Yi et al., 2019)."""
    negatives = sampler.shared()
    log_q = sampler.log_probabilities + np.log(sampler.n_negatives)
    positive = (states * table[targets]).sum(dim=1) - log_q[targets]
    negative = states @ table[negatives].T - log_q[negatives]
    negative = negative.masked_fill(negatives[None, :] == targets[:, None], -torch.inf)
    logits = torch.cat([positive[:, None], negative], dim=1)
    return torch.logsumexp(logits, dim=1) - positive
