"""``python -m s2i_train`` runs the ``s2i-train`` command line."""

from s2i_train.cli import main

main()
