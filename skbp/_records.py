"""The named records the compiled kernels take.

Plain ``namedtuple`` classes: Numba passes one as a struct of its fields, so a
kernel reads ``net.sizes`` or ``bufs.acts`` by name, at no cost, instead of
unpacking a long tuple by position.  Every field has one type per dtype
(arrays are C-contiguous; the data arrays read-only), so a record never adds
a compiled version.  Built in Python by ``Layout.net``, ``Problem.data``,
``Workspace`` and the training loops (``skbp._training``).
"""

from collections import namedtuple

#: The network: layer widths; where each layer's weights, biases and batch-norm
#: parameters start in the flat vector ``w``; where its outputs start in a row
#: of the activation buffers; hidden activation codes; residual flags (1 where
#: ``h_{l+1} = ... + h_l``); the matrix-product tuning (``skbp._matmul``);
#: dropout probabilities; the output activation's code; the blocks of the
#: parameter vector an update sweeps (``skbp._update.param_blocks``); the
#: periodic embedding of numeric inputs (``skbp._layout.Layout``): the input
#: columns it embeds ``emb_cols`` and those passed through ``pass_cols`` (both
#: size 0 without an embedding), its frequencies ``emb_k`` and width ``emb_d``
#: per column, and where its parameters start in ``w`` (``emb_off``).  (Whether
#: the network has batch norm is said by the kernels' ``bn_run`` argument:
#: ``None`` without.)
Net = namedtuple(
    "Net",
    "sizes coef_off int_off act_off bn_off codes res tune drop_p out_code blocks "
    "emb_cols pass_cols emb_k emb_d emb_off",
)

#: Rows to train on or predict: a dense ``Xd`` or the CSR arrays ``Xdat``,
#: ``Xind``, ``Xptr`` (the unused form has size 0; ``sparse`` says which), the
#: encoded targets ``Y`` and the sample weights ``sw`` (both size 0 to predict).
Data = namedtuple("Data", "Xd Xdat Xind Xptr sparse Y sw")

#: Work buffers for batches of up to ``rows`` rows; each holds every layer's
#: ``(B, width)`` block starting at ``rows * act_off[l]``: ``acts`` (layer
#: outputs), ``deltas`` (gradients w.r.t. layer outputs), ``fa`` (what the
#: backward pass reads of each activation, kept apart when dropout or a
#: residual changes the layer output, or for gelu and mish: their
#: pre-activations, the others' outputs),
#: ``masks`` (dropout scales), ``bnz`` and ``bnstat`` (batch norm's normalised
#: values and batch statistics), ``dz`` (one layer's gradient w.r.t. its
#: pre-activation) and ``X0`` (gathered dense input rows).  Unused: size 0.
#: Then scratch the kernels would otherwise allocate (each allocation is a
#: compiled specialisation of its own: compile time): ``ridx`` (``rows`` row
#: indices), ``rng`` (a generator state for passes that draw no dropout mask)
#: ``part`` (float64 partial sums, one row of 4 per parameter block) and
#: ``bnsum`` (batch norm's float64 column sums, twice the widest hidden layer);
#: ``emb``, the periodic embedding's cos/sin features of each row then its
#: gradient w.r.t. the embedded columns' outputs (size 0 without an embedding).
Buffers = namedtuple(
    "Buffers", "rows X0 acts deltas fa masks bnz bnstat dz ridx rng part bnsum emb"
)

#: The penalty ``alpha * (l1_ratio * ||W||_1 + (1 - l1_ratio) / 2 * ||W||^2)``
#: and gradient clipping (``max_grad_norm <= 0``: off).
Penalty = namedtuple("Penalty", "alpha l1_ratio max_grad_norm")

#: A stochastic optimizer: its code (``skbp._optim``), hyper-parameters and
#: state arrays (SGD's velocity or Adam's moments ``m``, ``v``; Adam's step
#: count ``t``, a 1-element array the kernels advance); the decoupled weight
#: decay (``weight_decay``, 0: off) and whether it reaches the biases and batch
#: norm's parameters (``decay_biases``, a bool); the learning-rate schedule
#: stepped per update (``skbp._optim.scheduled_lr``): its code ``schedule`` (0:
#: ``lr`` for every update), floor ``lr_min``, warm-up fraction ``warmup``,
#: number of cycles ``n_cycles``, the place ``u0`` of the epoch's first
#: mini-batch and the length ``horizon`` of the whole schedule, in mini-batches.
Optimizer = namedtuple(
    "Optimizer",
    "solver lr momentum nesterov beta_1 beta_2 epsilon m v t weight_decay decay_biases "
    "schedule lr_min warmup n_cycles u0 horizon",
)

#: One epoch's order and outputs: the row indices ``idx`` (shuffled in place
#: when ``shuffle``), the splitmix64 state ``rng``, the batch size, the
#: gradient buffer, the per-layer gradient norms ``gnorm`` and the sums ``out``
#: (see ``skbp._epoch.run_epoch``).
Epoch = namedtuple("Epoch", "idx shuffle rng batch_size grad gnorm out")
