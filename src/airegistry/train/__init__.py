"""Training integration (the seed's ``sagemaker.train``)."""
