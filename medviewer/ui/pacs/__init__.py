"""PACS feature: the PACS dock (servers, search, results by study and series, retrieve with
progress and cancel, open what arrived) over :mod:`medviewer.services.pacs`."""
