"""Interactive (promptable) segmentation engines: clicks, boxes and scribbles to a mask.
``classical`` needs no weights and no torch."""
