"""s2i_train: stream s2i datasets (docs/FORMAT.md) into PyTorch pretraining and evaluation.

Installed with the ``train`` extra (torch, torchvision, timm). ``s2i_prep`` never imports this package.
"""
