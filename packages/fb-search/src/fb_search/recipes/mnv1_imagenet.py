"""MobileNetV1-0.75 at 224x224 on ImageNet: QuantLab's recipes (``systems/ILSVRC12/MobileNetV1``), the paper's
network (Free Bits, arXiv 2307.02894).

    fb-search prepare imagenet2012 --manual-dir ~/imagenet --data-dir ~/tfds         # once, TF-free
    fb-search train-float --network mobilenetv1 --width 0.75 --resolution 224 --data imagenet2012 \
        --recipe mnv1_imagenet --out runs/mnv1 [--dry-run]
    fb-search search --data imagenet2012 --recipe mnv1_imagenet --float-ckpt runs/mnv1/checkpoints/float-s0 \
        --variant orig --mu 0.18 --out runs/mnv1
    fb-search finetune --data imagenet2012 --recipe mnv1_imagenet --config runs/mnv1/configs/bb-orig-mu0.18-s0.json \
        --ckpt runs/mnv1/checkpoints/float-s0 --out runs/mnv1/quantized

Multi-device: every local accelerator is used (batch-sharded mesh, replicated parameters). Multi-host: start the
same command on every host with ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` set
(``jax.distributed.initialize()`` is called); process 0 logs and writes. Step checkpoints every
``CKPT_EVERY`` steps; rerunning the same command resumes exactly.

Settings (QuantLab ``config.bb.json`` / ``config.tqt.8b.json``; ImageNet: 1,281,167 training images):

* BB (the ``mnv1_imagenet_bb`` part): SGD lr 1e-3, momentum 0.9, no weight decay, x0.1 after 4 and 7 of 11
  epochs, batch 256, no augmentation; gates Adam 1e-4 at a constant rate, phi_0 = 2, T = 0.5, mu0 0.18 (BOP
  target; 0.03 in the locked commit);
* TQT (``mnv1_imagenet_tqt``): SGD lr 1e-3, momentum 0.9, no weight decay, same schedule, 11 epochs, batch 256;
* float pre-training (not part of QuantLab's configs, which start from a pretrained checkpoint): SGD 0.1 (batch
  256), momentum 0.9, wd 4e-5, cosine, 90 epochs with the standard random-resized-crop augmentation.

Expected (paper, Table I): 8b/8b 69.1 % top-1 after TQT.
"""

from fb_search._model import BBOptions
from fb_search._train import OptSpec

EPOCH = 1_281_167 // 256
NETWORK = {"network": "mobilenetv1", "width": 0.75, "resolution": 224, "num_classes": 1000}
DATA = "imagenet2012"

FLOAT = OptSpec(kind="sgd", lr=0.1, momentum=0.9, weight_decay=4e-5, schedule="cosine", batch_size=256)
FLOAT_STEPS = 90 * EPOCH

BB = BBOptions(gate_init=2.0, temperature=0.5, per_sample=True, quantlab_mask=False)
SEARCH = OptSpec(kind="sgd", lr=1e-3, momentum=0.9, schedule="step", gate_lr=1e-4, batch_size=256)
SEARCH_STEPS = 11 * EPOCH
MU_GRID = (0.0, 0.03, 0.1, 0.18, 0.3, 0.5)

TQT = OptSpec(kind="sgd", lr=1e-3, momentum=0.9, schedule="step", batch_size=256)
TQT_STEPS = 11 * EPOCH

CALIBRATION_IMAGES = 512
CKPT_EVERY = 2000
FUSED_KERNELS = True  # fb_search._ops: pointwise as matrix products, hand-differentiated depthwise, BN+ReLU6
