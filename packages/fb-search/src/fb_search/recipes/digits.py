"""Digits recipe: digitsnet (16x16x1) on scikit-learn's digits, 1,257 training / 540 validation images.

    fb-search train-float --out runs/digits
    fb-search search --float-ckpt runs/digits/checkpoints/float-s0 --variant locked --mu 0.03 --out runs/digits
    fb-search finetune --config runs/digits/configs/bb-locked-mu0.03-s0.json \
        --ckpt runs/digits/checkpoints/float-s0 --out runs/digits

Expected on 2 CPU cores: float ~97-99 % (in ~15 s); each BB run ~10 s, the mu grid below going from 8-bit
everywhere (mu = 0) to mostly 2/4-bit; 8b/8b TQT fine-tuning within 3 images of float (~10 s).

Why these values differ from QuantLab's ImageNet recipe (SGD 1e-3 weights, Adam 1e-4 gates, 11 epochs, mu0 0.18;
see ``mnv1_imagenet_bb``): with 1.3k images a search has only a few hundred steps, and Adam moves phi by at most
about its learning rate per step. Starting from phi_0 = 2 (P(z != 0) = 0.96, T = 0.5) a gate needs
(2 + 0.54)/lr steps to cross the test threshold, so the gate learning rate is 1e-2 here (about 250 steps).
The weights keep training during the search with Adam at a small rate; phi_0 = 2 and T = 0.5 are QuantLab's.
"""

from fb_search._model import BBOptions
from fb_search._train import OptSpec

FLOAT = OptSpec(kind="adam", lr=3e-3, weight_decay=1e-4, schedule="cosine", batch_size=32)
FLOAT_STEPS = 800

BB = BBOptions(gate_init=2.0, temperature=0.5, per_sample=True, quantlab_mask=False)
SEARCH = OptSpec(kind="adam", lr=3e-4, schedule="constant", gate_lr=1e-2, batch_size=32)
SEARCH_STEPS = 300
MU_GRID = (0.0, 0.01, 0.03, 0.1, 0.3)

TQT = OptSpec(kind="sgd", lr=3e-3, momentum=0.9, schedule="cosine", batch_size=32)
TQT_STEPS = 250

CALIBRATION_IMAGES = 512
NETWORK = {"network": "digitsnet", "resolution": 16, "num_classes": 10}
DATA = "digits"
CKPT_EVERY = 0
# The fused kernels (fb_search._ops, fb_search.quant._bb_fused): on 2 cores digitsnet's float step is 1.77x and its
# search step 1.38x as fast as with the plain XLA kernels (benchmarks/bb_overhead.py --model digitsnet --plain).
# Results then move by float rounding whenever those kernels change; the plain ones (False) do not.
FUSED_KERNELS = True
