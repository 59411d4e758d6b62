"""The 3D view: label surfaces, direct volume rendering and the crosshair planes (VTK)."""
