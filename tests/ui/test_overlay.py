"""A label overlay follows the slice in every plane and is drawn in colour over the image."""
import numpy as np
import pytest

from medviewer.core.overlay import LabelOverlay


def _lung_mask(volume) -> np.ndarray:
    """Air inside the body of the real chest CT: a real, anatomy-shaped label map."""
    a = volume.array
    labels = np.zeros(a.shape, dtype=np.uint8)
    labels[(a < -400) & (a > -1000)] = 1
    labels[a > 300] = 2  # bone and contrast
    return labels


def test_overlay_follows_slices_in_all_planes(qtbot, chest_window):
    ses, views = chest_window.session, chest_window.tri.views
    labels = _lung_mask(ses.active)
    ses.set_overlay(LabelOverlay(labels, opacity=0.6))
    for plane, view in views.items():
        ov = view.overlay_item.image
        assert ov is not None and ov.shape == view.current.image.shape[:2], plane
        expected = view.reslicer.extract(labels, plane, view.current.index).image
        np.testing.assert_array_equal(ov, expected)
        assert set(np.unique(ov)) == {0, 1, 2}
    ses.set_cursor_index((20, 300, 100))
    ax = views["axial"]
    np.testing.assert_array_equal(ax.overlay_item.image, ax.reslicer.extract(labels, "axial", 20).image)
    assert ax.overlay_item.image.shape == (512, 512)


def test_overlay_changes_rendered_pixels_and_can_be_removed(qtbot, chest_window):
    ses, ax = chest_window.session, chest_window.tri.views["axial"]
    before = ax.grab().toImage()
    labels = _lung_mask(ses.active)
    ses.set_overlay(LabelOverlay(labels, opacity=0.8))
    qtbot.wait(50)
    after = ax.grab().toImage()

    def rgb(img):
        img = img.convertToFormat(img.Format.Format_RGB32)
        arr = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.width(), 4)
        return arr[..., :3].astype(int)

    a, b = rgb(before), rgb(after)
    changed = np.abs(a - b).sum(axis=2) > 30
    assert changed.mean() > 0.02  # lungs are a large part of the axial slice
    # overlay pixels are coloured, the grey image had r == g == b
    assert np.abs(b[changed][:, 0] - b[changed][:, 1]).mean() > 20
    ses.set_overlay(None)
    assert ax.overlay_item.image is None


def test_overlay_of_wrong_shape_is_refused(chest_window):
    with pytest.raises(ValueError, match="does not match"):
        chest_window.session.set_overlay(LabelOverlay(np.zeros((3, 4, 5), np.uint8)))
