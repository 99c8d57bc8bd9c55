"""Serving: loading trained models, whole-scene/whole-image inference, products and writers, export.

Above the tasks (a trained model is rebuilt by its task), below the entry
points. Submodules are imported by name; this file imports none of them.
"""
