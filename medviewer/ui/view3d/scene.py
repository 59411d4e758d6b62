"""Scene3D: the VTK scene of the 3D view, rendered offscreen into a numpy image.

Label surfaces (one actor per label), the volume by direct volume rendering (a CT preset) and
the three crosshair planes, in LPS millimetres. No Qt here: the Qt pane shows the image this
renders and turns mouse drags into :meth:`rotate` / :meth:`zoom` / :meth:`pan` / :meth:`pick`,
and the golden-image test renders it with no window at all (EGL or OSMesa when there is no
display). Use it on one thread only (the GUI thread in the app)."""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from medviewer.core.geometry import Geometry
from medviewer.core.volume import Volume

from .presets import PRESETS

BACKGROUND = (0.07, 0.07, 0.09)
PLANE_RGB = {"axial": (0.88, 0.75, 0.25), "coronal": (0.25, 0.75, 0.88),
             "sagittal": (0.88, 0.38, 0.63)}  # as the slice views' crosshair lines
BACKFACE_CULLING = True  # surfaces' back faces not drawn (benchmarks/mesh.py's baseline: off)
DVR_MAX_VOXELS = 8_000_000  # larger volumes are rendered from a 2x-strided copy (llvmpipe)


def _vtk():
    """The VTK modules the scene uses (imported on first use)."""
    import vtkmodules.vtkInteractionStyle  # noqa: F401  (object factories)
    import vtkmodules.vtkRenderingOpenGL2  # noqa: F401
    import vtkmodules.vtkRenderingVolumeOpenGL2  # noqa: F401
    from vtkmodules import vtkCommonCore, vtkCommonDataModel, vtkRenderingCore
    from vtkmodules import vtkRenderingVolume
    from vtkmodules.util import numpy_support

    # no "bad X server connection" warning on stderr when it falls back to EGL or OSMesa
    vtkCommonCore.vtkLogger.SetStderrVerbosity(vtkCommonCore.vtkLogger.VERBOSITY_ERROR)
    return vtkCommonCore, vtkCommonDataModel, vtkRenderingCore, vtkRenderingVolume, numpy_support


class Scene3D:
    """A renderer, its offscreen window and what it shows."""

    def __init__(self, width: int = 256, height: int = 256):
        core, data, rendering, _volume, self._np = _vtk()
        self._core, self._data, self._rendering = core, data, rendering
        self.window = rendering.vtkRenderWindow()
        self.window.SetOffScreenRendering(1)
        self.window.SetMultiSamples(0)
        self.window.SetDesiredUpdateRate(3.0)
        self.renderer = rendering.vtkRenderer()
        self.renderer.SetBackground(*BACKGROUND)
        self.renderer.SetUseFXAA(False)
        self.window.AddRenderer(self.renderer)
        self.window.SetSize(max(int(width), 1), max(int(height), 1))
        self.actors: Dict[int, object] = {}  # label value -> vtkActor
        self.colours: Dict[int, Optional[Tuple[int, int, int]]] = {}  # None: hidden
        self.geometry: Optional[Geometry] = None
        self.volume_actor = None
        self._volume_key = None
        self.preset: Optional[str] = None
        self.plane_actors: Dict[str, object] = {}
        self.show_planes = True
        self.show_surfaces = True
        self._camera_set = False

    # ------------------------------------------------------------------ checks
    def opengl_problem(self) -> Optional[str]:
        """Why this window cannot render (one sentence), or None."""
        try:
            ok = bool(self.window.SupportsOpenGL())
        except Exception as exc:  # pragma: no cover - depends on the platform
            return f"No OpenGL context could be made ({exc})."
        return None if ok else "No OpenGL context could be made (no GPU, EGL or OSMesa driver)."

    # ------------------------------------------------------------------ size and image
    def set_interactive(self, on: bool) -> None:
        """Volume rendering's frame-rate target: ~10 frames/s while the user turns the view
        (fewer samples per ray), ~3 when still (full quality wherever the GPU keeps up;
        software OpenGL then takes fewer samples rather than freezing the window)."""
        self.window.SetDesiredUpdateRate(10.0 if on else 3.0)

    def resize(self, width: int, height: int) -> None:
        self.window.SetSize(max(int(width), 1), max(int(height), 1))

    @property
    def size(self) -> Tuple[int, int]:
        w, h = self.window.GetSize()
        return int(w), int(h)

    def render(self) -> np.ndarray:
        """Render and read the picture back: (height, width, 3) uint8, top row first."""
        if not self._camera_set:
            self.reset_camera()
        self.window.Render()
        w, h = self.size
        arr = self._core.vtkUnsignedCharArray()
        self.window.GetPixelData(0, 0, w - 1, h - 1, 0, arr, 0)
        img = self._np.vtk_to_numpy(arr).reshape(h, w, -1)[::-1, :, :3]
        return np.ascontiguousarray(img)

    # ------------------------------------------------------------------ surfaces
    def set_geometry(self, geometry: Optional[Geometry]) -> None:
        if geometry != self.geometry:
            self.geometry = geometry
            self._camera_set = False

    def clear_surfaces(self) -> None:
        for actor in self.actors.values():
            self.renderer.RemoveActor(actor)
        self.actors.clear()

    def set_surfaces(self, surfaces: Mapping[int, object]) -> None:
        """Show these LabelSurfaces (replacing those of the same values; an empty surface
        removes its label's actor)."""
        for value, surf in surfaces.items():
            old = self.actors.pop(int(value), None)
            if old is not None:
                self.renderer.RemoveActor(old)
            if surf.n_triangles:
                actor = self._surface_actor(surf)
                self.actors[int(value)] = actor
                self.renderer.AddActor(actor)
                self._style(int(value), actor)

    def set_colours(self, colours: Mapping[int, Optional[Tuple[int, int, int]]]) -> None:
        """Label value -> (r, g, b) 0..255, or None to hide the label."""
        self.colours = dict(colours)
        for value, actor in self.actors.items():
            self._style(value, actor)

    def set_surfaces_visible(self, on: bool) -> None:
        self.show_surfaces = bool(on)
        for value, actor in self.actors.items():
            self._style(value, actor)

    def _style(self, value: int, actor) -> None:
        rgb = self.colours.get(value, (200, 200, 200))
        actor.SetVisibility(self.show_surfaces and rgb is not None)
        if rgb is not None:
            actor.GetProperty().SetColor(*(c / 255.0 for c in rgb))

    def _surface_actor(self, surf):
        np_ = self._np
        poly = self._data.vtkPolyData()
        pts = self._core.vtkPoints()
        pts.SetData(np_.numpy_to_vtk(surf.points, deep=True))
        poly.SetPoints(pts)
        n = surf.n_triangles
        offsets = np.arange(0, 3 * n + 1, 3, dtype=np.int64)
        cells = self._data.vtkCellArray()
        cells.SetData(np_.numpy_to_vtkIdTypeArray(offsets, deep=True),
                      np_.numpy_to_vtkIdTypeArray(surf.faces.astype(np.int64).ravel(), deep=True))
        poly.SetPolys(cells)
        normals = np_.numpy_to_vtk(surf.normals, deep=True)
        normals.SetName("Normals")
        poly.GetPointData().SetNormals(normals)
        mapper = self._rendering.vtkPolyDataMapper()
        mapper.SetInputData(poly)
        mapper.ScalarVisibilityOff()
        actor = self._rendering.vtkActor()
        actor.SetMapper(mapper)
        prop = actor.GetProperty()
        # the surfaces are closed and wound outwards: their back faces are never seen from
        # outside, and not drawing them halves software OpenGL's render (392k triangles of the
        # 512x512 TotalSegmentator labels: ~70 -> ~30 ms, the GUI thread's longest wait)
        prop.SetBackfaceCulling(BACKFACE_CULLING)
        prop.SetInterpolationToPhong()
        prop.SetSpecular(0.25)
        prop.SetSpecularPower(20)
        prop.SetDiffuse(0.8)
        prop.SetAmbient(0.15)
        return actor

    # ------------------------------------------------------------------ volume rendering
    def set_volume(self, volume: Optional[Volume]) -> None:
        """The image for direct volume rendering (shown while a preset is chosen)."""
        # colour images and single slices have no volume to render (surfaces and planes do)
        key = None if volume is None or volume.is_rgb or volume.shape[0] < 2 else volume
        if volume is not None:
            self.set_geometry(volume.geometry)
        if key is self._volume_key:
            return
        if self.volume_actor is not None:
            self.renderer.RemoveVolume(self.volume_actor)
            self.volume_actor = None
        self._volume_key = self._volume = key
        if self.preset is not None:
            self.set_preset(self.preset)

    def set_preset(self, name: Optional[str]) -> None:
        """A CT preset of ``PRESETS`` for the volume, or None for no volume rendering."""
        if name is not None and name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
        self.preset = name
        if name is None or self._volume_key is None:
            if self.volume_actor is not None:
                self.volume_actor.SetVisibility(False)
            return
        if self.volume_actor is None:
            self.volume_actor = self._make_volume(self._volume)
            self.renderer.AddVolume(self.volume_actor)
        preset = PRESETS[name]
        prop = self.volume_actor.GetProperty()
        otf = prop.GetScalarOpacity()
        otf.RemoveAllPoints()
        for hu, a in preset.opacity:
            otf.AddPoint(hu, a)
        ctf = prop.GetRGBTransferFunction()
        ctf.RemoveAllPoints()
        for hu, rgb in preset.colours:
            ctf.AddRGBPoint(hu, *rgb)
        prop.SetShade(preset.shade)
        self.volume_actor.SetVisibility(True)

    def _make_volume(self, volume: Volume):
        from vtkmodules.vtkRenderingVolume import vtkGPUVolumeRayCastMapper

        arr = np.asarray(volume.array)
        step = 2 if arr.size > DVR_MAX_VOXELS else 1
        small = np.ascontiguousarray(arr[:, ::step, ::step])
        if small.dtype not in (np.int16, np.uint16, np.uint8, np.float32):
            small = small.astype(np.float32)
        img = self._data.vtkImageData()
        nz, ny, nx = small.shape
        img.SetDimensions(nx, ny, nz)
        img.SetSpacing(step, step, 1.0)  # index units: the actor's matrix maps them to LPS
        scalars = self._np.numpy_to_vtk(small.ravel(), deep=True)
        img.GetPointData().SetScalars(scalars)
        mapper = vtkGPUVolumeRayCastMapper()
        mapper.SetInputData(img)
        mapper.SetAutoAdjustSampleDistances(True)
        prop = self._rendering.vtkVolumeProperty()
        prop.SetInterpolationTypeToLinear()
        prop.SetAmbient(0.25)
        prop.SetDiffuse(0.8)
        prop.SetSpecular(0.15)
        vol = self._rendering.vtkVolume()
        vol.SetMapper(mapper)
        vol.SetProperty(prop)
        vol.SetUserMatrix(self._matrix(volume.geometry.affine_lps()))
        return vol

    def _matrix(self, m: np.ndarray):
        from vtkmodules.vtkCommonMath import vtkMatrix4x4

        out = vtkMatrix4x4()
        for i in range(4):
            for j in range(4):
                out.SetElement(i, j, float(m[i, j]))
        return out

    # ------------------------------------------------------------------ crosshair planes
    def set_cursor(self, index_zyx: Sequence[float]) -> None:
        """The three planes through the cursor voxel (the image's index planes)."""
        geo = self.geometry
        if geo is None:
            return
        nz, ny, nx = geo.shape
        z, y, x = (float(v) for v in index_zyx)
        lo = (-0.5, -0.5, -0.5)
        hi = (nx - 0.5, ny - 0.5, nz - 0.5)
        quads = {  # (x, y, z) index corners of each plane
            "axial": [(lo[0], lo[1], z), (hi[0], lo[1], z), (hi[0], hi[1], z), (lo[0], hi[1], z)],
            "coronal": [(lo[0], y, lo[2]), (hi[0], y, lo[2]), (hi[0], y, hi[2]), (lo[0], y, hi[2])],
            "sagittal": [(x, lo[1], lo[2]), (x, hi[1], lo[2]), (x, hi[1], hi[2]), (x, lo[1], hi[2])],
        }
        for plane, corners in quads.items():
            lps = geo.index_to_lps(np.asarray(corners, dtype=float))
            actor = self.plane_actors.get(plane)
            if actor is None:
                actor = self._plane_actor(PLANE_RGB[plane])
                self.plane_actors[plane] = actor
                self.renderer.AddActor(actor)
            pts = actor.GetMapper().GetInput().GetPoints()
            for i, p in enumerate(lps):
                pts.SetPoint(i, *p)
            pts.Modified()
            actor.SetVisibility(self.show_planes)

    def set_planes_visible(self, on: bool) -> None:
        self.show_planes = bool(on)
        for actor in self.plane_actors.values():
            actor.SetVisibility(self.show_planes)

    def _plane_actor(self, rgb):
        poly = self._data.vtkPolyData()
        pts = self._core.vtkPoints()
        pts.SetNumberOfPoints(4)
        for i in range(4):
            pts.SetPoint(i, 0.0, 0.0, 0.0)
        poly.SetPoints(pts)
        lines = self._data.vtkCellArray()
        lines.InsertNextCell(5)
        for i in (0, 1, 2, 3, 0):
            lines.InsertCellPoint(i)
        poly.SetLines(lines)
        mapper = self._rendering.vtkPolyDataMapper()
        mapper.SetInputData(poly)
        actor = self._rendering.vtkActor()
        actor.SetMapper(mapper)
        prop = actor.GetProperty()
        prop.SetColor(*rgb)
        prop.SetLineWidth(2.0)
        prop.LightingOff()
        actor.PickableOff()
        return actor

    # ------------------------------------------------------------------ camera
    def reset_camera(self) -> None:
        """Look at the image (or what is shown) from the front: the patient's head up and
        their left on the right of the picture (anterior view)."""
        cam = self.renderer.GetActiveCamera()
        if self.geometry is not None:
            nz, ny, nx = self.geometry.shape
            corners = np.array([[x, y, z] for x in (0, nx - 1) for y in (0, ny - 1)
                                for z in (0, nz - 1)], dtype=float)
            lps = self.geometry.index_to_lps(corners)
            lo, hi = lps.min(axis=0), lps.max(axis=0)
        else:
            bounds = self.renderer.ComputeVisiblePropBounds()
            lo, hi = np.array(bounds[0::2]), np.array(bounds[1::2])
            if not np.all(np.isfinite(lo)) or np.any(hi < lo):
                lo, hi = -np.ones(3), np.ones(3)
        centre = (lo + hi) / 2.0
        half = np.maximum((hi - lo) / 2.0, 1.0)
        w, h = self.size
        aspect = w / max(h, 1)
        tan = np.tan(np.radians(15.0))  # half of the 30 degree view angle
        # seen from the front: L-R across the picture, I-S up it, A-P its depth
        dist = max(half[2], half[0] / aspect) * 1.08 / tan + half[1]
        cam.SetFocalPoint(*centre)
        cam.SetPosition(*(centre + np.array([0.0, -dist, 0.0])))  # anterior: towards -P
        cam.SetViewUp(0.0, 0.0, 1.0)  # superior
        cam.SetViewAngle(30.0)
        self.renderer.ResetCameraClippingRange()
        self._camera_set = True

    def rotate(self, dx_deg: float, dy_deg: float) -> None:
        """Turn the camera about the focal point: horizontally ``dx_deg``, vertically ``dy_deg``."""
        cam = self.renderer.GetActiveCamera()
        cam.Azimuth(-float(dx_deg))
        cam.Elevation(float(dy_deg))
        cam.OrthogonalizeViewUp()
        self.renderer.ResetCameraClippingRange()

    def zoom(self, factor: float) -> None:
        """> 1 comes closer."""
        self.renderer.GetActiveCamera().Dolly(max(float(factor), 1e-3))
        self.renderer.ResetCameraClippingRange()

    def pan(self, dx_px: float, dy_px: float) -> None:
        """Move what is shown by (dx, dy) screen pixels (y down)."""
        cam = self.renderer.GetActiveCamera()
        w, h = self.size
        fp, pos = np.array(cam.GetFocalPoint()), np.array(cam.GetPosition())
        dist = float(np.linalg.norm(pos - fp))
        mm_per_px = 2.0 * dist * np.tan(np.radians(cam.GetViewAngle() / 2.0)) / max(h, 1)
        up = np.array(cam.GetViewUp())
        right = np.cross(fp - pos, up)
        right /= max(np.linalg.norm(right), 1e-12)
        shift = (-dx_px * right + dy_px * up) * mm_per_px
        cam.SetFocalPoint(*(fp + shift))
        cam.SetPosition(*(pos + shift))
        self.renderer.ResetCameraClippingRange()

    # ------------------------------------------------------------------ picking
    def pick(self, x: float, y: float) -> Optional[np.ndarray]:
        """The LPS point of the surface (or the rendered volume) under pixel (x, y) of the
        picture (y down from the top), or None when nothing is there."""
        picker = self._rendering.vtkCellPicker()
        picker.SetTolerance(0.0005)
        picker.SetVolumeOpacityIsovalue(0.1)
        w, h = self.size
        if not picker.Pick(float(x), float(h - 1 - y), 0.0, self.renderer):
            return None
        return np.array(picker.GetPickPosition(), dtype=float)
