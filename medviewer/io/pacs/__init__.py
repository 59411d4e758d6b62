"""PACS clients without Qt: DIMSE (pynetdicom: C-ECHO, C-FIND, C-GET, C-MOVE, C-STORE) and
DICOMweb (dicomweb-client: QIDO-RS, WADO-RS, STOW-RS), a resumable instance cache, and the
shared server/query/match types. Both libraries are imported only when a call needs them."""
from .common import (IncompleteRetrieve, Match, PacsError, PacsServer, Query, RetrieveCancelled,
                     RetrieveResult)

__all__ = ["IncompleteRetrieve", "Match", "PacsError", "PacsServer", "Query", "RetrieveCancelled",
           "RetrieveResult"]
