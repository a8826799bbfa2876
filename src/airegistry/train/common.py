"""Re-exports shared by trainers; the seed imports CustomizationTechnique from here."""

from airegistry.dataset_utils import CustomizationTechnique

__all__ = ["CustomizationTechnique"]
