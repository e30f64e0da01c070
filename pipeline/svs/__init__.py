"""Singing-voice separation with Ideal-Binary-Mask networks (Lin et al. 2018 and a fast FCN).

Public entry points (stable signatures, called by the CLI and the Prefect flows):

* :func:`pipeline.svs.train.train_separator`
* :func:`pipeline.svs.separate.separate_file`
* :func:`pipeline.svs.evaluate.evaluate_separator`
"""
