"""Training framework: config, model-folder format, callbacks, Keras workarounds and the loop.

Submodules are imported by name (`from tfseaice.training import config`) and
this file imports none of them: `config`, `model_dir` and `callbacks` sit below
the tasks (which use them), `loop` sits above them (it runs a task).
"""
