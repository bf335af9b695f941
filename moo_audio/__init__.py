"""moo_audio: multi-objective architecture search for energy-efficient always-on audio models."""

from moo_audio.space import Block, FrontEnd, Genome, GenomeRepair, GenomeSampling, SearchSpace

__version__ = "0.1.0"

__all__ = ["Block", "FrontEnd", "Genome", "GenomeRepair", "GenomeSampling", "SearchSpace",
           "__version__"]
