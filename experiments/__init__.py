"""Experiments that reproduce published DBN results and answer the product's questions.

Each module is one command, ``python -m experiments.NAME``, that writes a
``results.json`` of figures and the pictures it draws to ``docs/results/NAME/``.
"""
