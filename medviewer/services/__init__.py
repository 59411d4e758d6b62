"""Qt-free use cases shared by the UI and the command line (one code path for both):

- ``studies``: scan paths, load a series, demo studies, DICOM tags
- ``ai_runs``: run a model on a case (classification + saliency, segmentation + uncertainty),
  store its proposal; the inference lane (device, cached model) and its job context
- ``annotations``: recovery on open, storing labels/case labels/reviews with an image
  snapshot, label-file import/export
- ``review``: the review queue, reopening a queued case, validation split units, effort
- ``finetune``: the training manifest of a model, the trainer's command line and output
- ``models``: the model catalogue (versions, active pointer, import, promote, rollback)
- ``workspace``: the workspace folder, its label store and stroke journals
- ``context``: AppServices, the shared objects the composition root hands to features

Plain functions and classes that take a jobs ``Reporter`` for progress and cancel; no
widgets, no Qt signals."""
