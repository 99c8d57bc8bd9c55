"""SavedModel facts shared by every export: the metadata file, signatures as text, TF Serving use."""

import json
import os

from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2

from tfseaice.io_utils import read_json

META_FILE = os.path.join("assets.extra", "tfseaice.json")


def write_export_meta(export_dir, meta):
    """Write `assets.extra/tfseaice.json` (channels, downsampling, task...) into a SavedModel folder."""
    os.makedirs(os.path.join(export_dir, "assets.extra"), exist_ok=True)
    with open(os.path.join(export_dir, META_FILE), "w") as f:
        json.dump(meta, f, indent=2)


def read_export_meta(export_dir):
    """The dict of `assets.extra/tfseaice.json`, or {} for a SavedModel without it."""
    return read_json(os.path.join(export_dir, META_FILE), missing={})


def describe_saved_model(path):
    """The signatures of a SavedModel as `saved_model_cli show --dir PATH --all` prints them."""
    sm = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        sm.ParseFromString(f.read())
    lines = []
    for mg in sm.meta_graphs:
        lines.append(f"MetaGraphDef with tag-set: '{', '.join(mg.meta_info_def.tags)}' "
                     "contains the following SignatureDefs:")
        for name in sorted(mg.signature_def):
            if name.startswith("__"):
                continue
            sig = mg.signature_def[name]
            lines.append("")
            lines.append(f"signature_def['{name}']:")
            for kind, tensors in (("input", sig.inputs), ("output", sig.outputs)):
                lines.append(f"  The given SavedModel SignatureDef contains the following {kind}(s):")
                for key in sorted(tensors):
                    t = tensors[key]
                    dims = tuple(d.size for d in t.tensor_shape.dim)
                    shape = "unknown_rank" if t.tensor_shape.unknown_rank else str(dims).replace(",)", ")")
                    lines.append(f"    {kind}s['{key}'] tensor_info:")
                    lines.append(f"        dtype: {types_pb2.DataType.Name(t.dtype)}")
                    lines.append(f"        shape: {shape}")
                    lines.append(f"        name: {t.name}")
            lines.append(f"  Method name is: {sig.method_name}")
    return "\n".join(lines)


def serving_instructions(export_dir, model_name="sic", channels=2, ice_types=False):
    """The docker command for TF Serving and an example REST request (`ice_types`: the model has SOD/FLOE heads)."""
    src = os.path.abspath(export_dir)
    pixel = [-14.5, -24.7][:channels] + [0.0] * max(0, channels - 2)
    row = ", ".join([json.dumps(pixel)] * 2) + ", ..."
    return "\n".join([
        "Serve it with TF Serving (REST on port 8501; the SavedModel is mounted as version 1):",
        "",
        "  docker run --rm -p 8501:8501 \\",
        f"    --mount type=bind,source={src},target=/models/{model_name}/1,readonly \\",
        f"    -e MODEL_NAME={model_name} -t tensorflow/serving",
        "",
        "Request (sar: [batch, H, W, C] in dB, H and W multiples of 16, NaN allowed):",
        "",
        f"  curl -s -X POST http://localhost:8501/v1/models/{model_name}:predict \\",
        "    -H 'Content-Type: application/json' \\",
        f"    -d '{{\"signature_name\": \"serving_default\", \"inputs\": {{\"sar\": [[[{row}], ...]]}}}}'",
        "",
        "Response: {\"outputs\": {\"sic\": [batch][H][W] floats, \"ice_water\": [batch][H][W] ints"
        + (", \"sod\", \"floe\": [batch][H][W] class indices (255 = no data), \"sod_probability\", "
           "\"floe_probability\": [batch][H][W][classes]" if ice_types else "") + "}}",
    ])
