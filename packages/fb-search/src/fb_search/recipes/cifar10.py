"""MobileNetV1-0.5 at 32x32 on CIFAR-10 (a mid-size check between digits and ImageNet).

    fb-search prepare cifar10 --manual-dir ~/cifar --data-dir ~/tfds      # cifar-10-python.tar.gz, TF-free
    fb-search train-float --network mobilenetv1 --width 0.5 --resolution 32 --data cifar10 --recipe cifar10

Adam 2e-3 cosine for the float network (60 epochs, batch 128); BB with QuantLab's phi_0 = 2, T = 0.5 and a
gate Adam rate of 1e-3 (between digits' 1e-2 and ImageNet's 1e-4: ~1,000 steps to cross the test threshold);
TQT SGD 1e-3 momentum 0.9. Multi-device as in ``mnv1_imagenet``.
"""

from fb_search._model import BBOptions
from fb_search._train import OptSpec

EPOCH = 50_000 // 128
NETWORK = {"network": "mobilenetv1", "width": 0.5, "resolution": 32, "num_classes": 10}
DATA = "cifar10"

FLOAT = OptSpec(kind="adam", lr=2e-3, weight_decay=1e-4, schedule="cosine", batch_size=128)
FLOAT_STEPS = 60 * EPOCH
BB = BBOptions(gate_init=2.0, temperature=0.5, per_sample=True, quantlab_mask=False)
SEARCH = OptSpec(kind="adam", lr=1e-4, schedule="constant", gate_lr=1e-3, batch_size=128)
SEARCH_STEPS = 5 * EPOCH
MU_GRID = (0.0, 0.01, 0.03, 0.1, 0.3)
TQT = OptSpec(kind="sgd", lr=1e-3, momentum=0.9, schedule="cosine", batch_size=128)
TQT_STEPS = 5 * EPOCH
CALIBRATION_IMAGES = 512
CKPT_EVERY = 1000
FUSED_KERNELS = True  # fb_search._ops: pointwise as matrix products, hand-differentiated depthwise, BN+ReLU6
