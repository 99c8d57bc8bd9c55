"""Atomic netCDF writing of sample scenes (raw and ready-to-train): the production writer, `data.scene_writer`.

Why no writer of its own: sample scenes and scenes made from Sentinel-1
products are the same layout, so they go through one writer.
"""

from tfseaice.data import scene_writer


def write_scene(ds, path):
    """Write a sample scene `ds` to `path` atomically (`tfseaice.data.scene_writer.write_scene`)."""
    scene_writer.write_scene(ds, path)
