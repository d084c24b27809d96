"""MobileNetV2-1.0 at 224x224 on ImageNet: QuantLab's recipes (``systems/ILSVRC12/MobileNetV2``), 8-bit
residual adds (``bb_adders=False``), the paper's second network (Free Bits, arXiv 2307.02894).

    fb-search prepare imagenet2012 --manual-dir ~/imagenet --data-dir ~/tfds         # once, TF-free
    fb-search train-float --network mobilenetv2 --width 1.0 --resolution 224 --data imagenet2012 \
        --recipe mnv2_imagenet --out runs/mnv2 [--dry-run]
    fb-search search --data imagenet2012 --recipe mnv2_imagenet --float-ckpt runs/mnv2/checkpoints/float-s0 \
        --variant locked --mu 0.03 --out runs/mnv2

Multi-device and multi-host as in ``mnv1_imagenet`` (all local devices; ``JAX_COORDINATOR_ADDRESS``,
``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID`` on every host).

Settings: BB (``mnv2_imagenet_bb``) as MobileNetV1's (SGD 1e-3 momentum 0.9, gates Adam 1e-4, phi_0 = 2,
T = 0.5, 11 epochs, x0.1 after 4 and 7); TQT (``mnv2_imagenet_tqt``): SGD lr 7.5e-4, momentum 0.9, weight
decay 4e-5 (also on log_t, as in QuantLab), 12 epochs, batch 256.
"""

from fb_search._model import BBOptions
from fb_search._train import OptSpec

EPOCH = 1_281_167 // 256
NETWORK = {"network": "mobilenetv2", "width": 1.0, "resolution": 224, "num_classes": 1000}
DATA = "imagenet2012"

FLOAT = OptSpec(kind="sgd", lr=0.1, momentum=0.9, weight_decay=4e-5, schedule="cosine", batch_size=256)
FLOAT_STEPS = 150 * EPOCH

BB = BBOptions(gate_init=2.0, temperature=0.5, per_sample=True, quantlab_mask=False)
SEARCH = OptSpec(kind="sgd", lr=1e-3, momentum=0.9, schedule="step", gate_lr=1e-4, batch_size=256)
SEARCH_STEPS = 11 * EPOCH
MU_GRID = (0.0, 0.03, 0.1, 0.18, 0.3, 0.5)

TQT = OptSpec(kind="sgd", lr=7.5e-4, momentum=0.9, weight_decay=4e-5, schedule="step", batch_size=256)
TQT_STEPS = 12 * EPOCH

CALIBRATION_IMAGES = 512
CKPT_EVERY = 2000
FUSED_KERNELS = True  # fb_search._ops: pointwise as matrix products, hand-differentiated depthwise, BN+ReLU6
