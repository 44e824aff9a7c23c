"""Sequence encoders: item codes in, one hidden state per position out.

Every encoder reads a left-padded batch of item codes of shape ``(batch,
length)``, where code 0 is padding, code 1 marks the start of a history and
codes 2 and up are items, with a boolean padding mask of the same shape. It
returns hidden states of shape ``(batch, length, dim)``: the state at a
position summarises the history up to and including it, never later items.
Its ``item_embedding`` table (one row per code) is both its input table and
the output layer: the score of item ``j`` after a position is the dot product
of the position's state with row ``j``.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

PAD_CODE = 0
START_CODE = 1
# Table rows before the first item's.
FIRST_ITEM_CODE = 2

# Initial scale of the item and position tables, as in SASRec's reference
# implementation (a truncated normal of std 0.02 in later ones).
EMBEDDING_INIT_STD = 0.02


class Dropout(nn.Module):
    """``nn.Dropout`` whose mask, on the CPU, comes from random bytes.

    torch draws a CPU dropout mask one float per element, which takes longer
    than the matrix products of a sequence encoder's step; one random byte per
    element, compared with ``p`` in 256ths, is five times faster. ``p`` is
    rounded to a multiple of 1/256 there (0.2 becomes 0.199). Elsewhere this
    is ``nn.functional.dropout``.
    """

    def __init__(self, p):
        super().__init__()
        self.p = p
        # At most 255: a mask that drops every element has no scale.
        self.threshold = min(round(p * 256), 255)

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, training=True)
        n_words = -(-x.numel() // 8)
        # The full int64 range: random_() alone draws below 2**63, which
        # would bias every eighth byte.
        random = torch.empty(n_words, dtype=torch.int64, device=x.device)
        random.random_(-(2**63), 2**63 - 1)
        keep = random.view(torch.uint8)[: x.numel()].view(x.shape) >= self.threshold
        return x * (keep.to(x.dtype) * (256 / (256 - self.threshold)))


class SelfAttentionEncoder(nn.Module):
    """Causal self-attention over the history, as SASRec (Kang & McAuley, 2018).

    Item embeddings, scaled by ``sqrt(dim)``, plus learned position
    embeddings counted back from the latest position, pass through
    ``n_layers`` pre-norm blocks of causal multi-head attention and a
    position-wise feed-forward layer, then a final layer norm.
    """

    def __init__(self, n_items, *, dim, max_len, n_layers, n_heads, dropout):
        super().__init__()
        if dim % n_heads:
            raise ValueError(
                f"embedding_dim={dim} must be a multiple of n_heads={n_heads}."
            )
        self.item_embedding = _item_table(n_items, dim)
        self.position_embedding = nn.Embedding(max_len, dim)
        nn.init.normal_(self.position_embedding.weight, std=EMBEDDING_INIT_STD)
        self.max_len = max_len
        self.scale = math.sqrt(dim)
        self.dropout = Dropout(dropout)
        self.blocks = nn.ModuleList(
            _AttentionBlock(dim, n_heads, dropout) for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, items, padding_mask):
        length = items.shape[1]
        # Positions count back from the latest item, so that a history's last
        # state has the same position however long the history is.
        positions = torch.arange(
            self.max_len - length, self.max_len, device=items.device
        )
        keep = (~padding_mask).unsqueeze(-1).to(self.item_embedding.weight.dtype)
        hidden = self.item_embedding(items) * self.scale
        hidden = self.dropout(hidden + self.position_embedding(positions)) * keep
        mask = _causal_mask(padding_mask)
        for block in self.blocks:
            hidden = block(hidden, mask) * keep
        return self.norm(hidden)


class _AttentionBlock(nn.Module):
    def __init__(self, dim, n_heads, dropout):
        super().__init__()
        self.n_heads = n_heads
        self.attention_norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.feed_forward_norm = nn.LayerNorm(dim)
        self.feed_forward = nn.Sequential(
            nn.Linear(dim, dim),
            nn.ReLU(),
            Dropout(dropout),
            nn.Linear(dim, dim),
        )
        self.dropout = Dropout(dropout)

    def forward(self, hidden, mask):
        batch, length, dim = hidden.shape
        qkv = self.qkv(self.attention_norm(hidden))
        q, k, v = qkv.view(batch, length, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        # No dropout on the attention weights: a mask of batch x length x
        # length draws per step costs more than the rest of the block.
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        attended = attended.transpose(1, 2).reshape(batch, length, dim)
        hidden = hidden + self.dropout(self.out(attended))
        return hidden + self.dropout(self.feed_forward(self.feed_forward_norm(hidden)))


def _causal_mask(padding_mask):
    """Which keys each query may attend to, shape ``(batch, 1, length, length)``:
    itself and the earlier positions that are not padding.

    A padding query attends to itself alone, so that no row of the attention
    is empty (an empty softmax is NaN).
    """
    length = padding_mask.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=padding_mask.device)
    causal = causal.tril()
    allowed = causal & ~padding_mask[:, None, :]
    allowed |= torch.eye(length, dtype=torch.bool, device=padding_mask.device)
    return allowed.unsqueeze(1)


class RecurrentEncoder(nn.Module):
    """A GRU over the history, as GRU4Rec (Hidasi et al., 2016), with a softmax
    over the items at every position."""

    def __init__(self, n_items, *, dim, n_layers, dropout, **ignored):
        super().__init__()
        self.item_embedding = _item_table(n_items, dim)
        self.dropout = Dropout(dropout)
        self.gru = nn.GRU(
            dim,
            dim,
            num_layers=n_layers,
            batch_first=True,
            dropout=dropout if n_layers > 1 else 0.0,
        )

    def forward(self, items, padding_mask):
        # The GRU runs over each history alone, packed: a state that also ran
        # over the padding would depend on how much of it a batch has.
        length = items.shape[1]
        lengths = (~padding_mask).sum(dim=1)
        positions = torch.arange(length, device=items.device)
        # Histories moved to the left of their rows, padding last, and back.
        to_left = (positions + (length - lengths)[:, None]) % length
        to_right = (positions - (length - lengths)[:, None]) % length
        embedded = self.dropout(self.item_embedding(items.gather(1, to_left)))
        packed = nn.utils.rnn.pack_padded_sequence(
            embedded, lengths.cpu().clamp(min=1), batch_first=True, enforce_sorted=False
        )
        hidden, _ = self.gru(packed)
        hidden, _ = nn.utils.rnn.pad_packed_sequence(
            hidden, batch_first=True, total_length=length
        )
        index = to_right.unsqueeze(-1).expand(-1, -1, hidden.shape[-1])
        return self.dropout(hidden.gather(1, index))


class ConvolutionalEncoder(nn.Module):
    """Stacked causal dilated convolutions over the history, as NextItNet
    (Yuan et al., 2019): ``n_layers`` residual blocks of two convolutions of
    width 3, the dilation doubling from block to block."""

    KERNEL_SIZE = 3

    def __init__(self, n_items, *, dim, n_layers, dropout, **ignored):
        super().__init__()
        self.item_embedding = _item_table(n_items, dim)
        self.dropout = Dropout(dropout)
        self.blocks = nn.ModuleList(
            _ConvolutionBlock(dim, self.KERNEL_SIZE, 2**k, dropout)
            for k in range(n_layers)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, items, padding_mask):
        keep = (~padding_mask).unsqueeze(-1).to(self.item_embedding.weight.dtype)
        hidden = self.dropout(self.item_embedding(items)) * keep
        # Convolutions run over (batch, channels, length). Padding stays
        # zero after every block, as the convolutions' own left padding is:
        # a state never depends on how much padding a batch has.
        hidden, keep = hidden.transpose(1, 2), keep.transpose(1, 2)
        for block in self.blocks:
            hidden = block(hidden, keep)
        return self.norm(hidden.transpose(1, 2))


class _ConvolutionBlock(nn.Module):
    def __init__(self, dim, kernel_size, dilation, dropout):
        super().__init__()
        self.left_padding = (kernel_size - 1) * dilation
        self.first = nn.Conv1d(dim, dim, kernel_size, dilation=dilation)
        self.second = nn.Conv1d(dim, dim, kernel_size, dilation=2 * dilation)
        self.first_norm = nn.LayerNorm(dim)
        self.second_norm = nn.LayerNorm(dim)
        self.dropout = Dropout(dropout)

    def forward(self, hidden, keep):
        out = self._causal(self.first, hidden, self.left_padding, self.first_norm)
        out = self._causal(
            self.second, out * keep, 2 * self.left_padding, self.second_norm
        )
        return (hidden + self.dropout(out)) * keep

    @staticmethod
    def _causal(convolution, hidden, left_padding, norm):
        # Padding on the left only: a position never sees later ones.
        out = convolution(F.pad(hidden, (left_padding, 0)))
        return torch.relu(norm(out.transpose(1, 2)).transpose(1, 2))


SEQUENCE_ARCHITECTURES = {
    "sasrec": SelfAttentionEncoder,
    "gru": RecurrentEncoder,
    "cnn": ConvolutionalEncoder,
}


def _item_table(n_items, dim):
    table = nn.Embedding(n_items, dim, padding_idx=PAD_CODE)
    nn.init.normal_(table.weight, std=EMBEDDING_INIT_STD)
    with torch.no_grad():
        table.weight[PAD_CODE] = 0.0
    return table


def output_table(module):
    """The rows that score the items: the module's item table without its
    padding and start rows."""
    return module.item_embedding.weight[FIRST_ITEM_CODE:]
