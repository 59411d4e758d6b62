"""Registration in the app: the "Register series…" dialog, the fused display of a registered
series over its fixed one (blend, checkerboard, swipe) in the three planes, labels carried
over, the transform saved and the registered series exported."""
