"""The training-job record: SageMaker's training-job operations over the metadata store.

The compute runs wherever a trainer is called (``airegistry.train``); the registry only
holds the record. ``store`` owns every SQL statement, ``service`` the operation rules.
"""
