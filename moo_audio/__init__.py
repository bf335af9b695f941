"""moo_audio: multi-objective architecture search for energy-efficient always-on audio models."""

from moo_audio.space import Block, FrontEnd, Genome, GenomeRepair, GenomeSampling, SearchSpace

__version__ = "0.1.0"

__all__ = ["AudioNASProblem", "Block", "FrontEnd", "Genome", "GenomeRepair", "GenomeSampling",
           "SearchSpace", "__version__"]


def __getattr__(name):
    # AudioNASProblem pulls in torch, torchaudio and the data loaders: import it on first use.
    if name == "AudioNASProblem":
        from moo_audio.problem import AudioNASProblem
        return AudioNASProblem
    raise AttributeError(f"module 'moo_audio' has no attribute {name!r}")
