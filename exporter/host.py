"""Re-export kept for the documented ``exporter.host.HostProfile`` (the code lives in ``exporter.runtime.host``
and, for the variant choice, ``exporter.deploy.choice``)."""

from exporter.deploy.choice import Candidate, Choice, choose_variant
from exporter.runtime.host import HostProfile

__all__ = ["Candidate", "Choice", "HostProfile", "choose_variant"]
