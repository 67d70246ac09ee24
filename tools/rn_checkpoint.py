"""The resnet-train checkpoint format (HDF5), as the Python tools read and write it.

Shared by export_torch.py and import_torch.py. The C++ side is
trainer/checkpoint/checkpoint_writer.cpp (writer) and checkpoint_reader.cpp
(reader); this module must agree with them:

  root attributes  format = "resnet-checkpoint", format_version = 2,
                   complete = 1 (written last), arch, num_classes, step, ...
  /model/<name>    the torchvision state_dict, fp32 in PyTorch shapes,
                   num_batches_tracked as a 0-d int64
  /classes         optional class names (index = label)

Needs h5py and numpy (Debian: python3-h5py).
"""

import os

import h5py
import numpy as np

FORMAT = "resnet-checkpoint"
FORMAT_VERSION = 2
# The architectures both resnet-train and torchvision build, with the same
# parameter names; cifar-* and plain* exist only in resnet-train.
TORCHVISION_ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


class CheckpointError(Exception):
    """The file is not a complete checkpoint this tool reads; the message says why."""


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def read_model(path):
    """Returns (attrs, {name: numpy array}, class_names or None) of checkpoint `path`.

    Raises CheckpointError for a missing, non-HDF5, foreign, incomplete or too
    new file, as resnet-train's reader does.
    """
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path} does not exist; check the path")
    if os.path.isdir(path) or not h5py.is_hdf5(path):
        raise CheckpointError(f"checkpoint {path} is not an HDF5 file (truncated, or not a checkpoint)")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise CheckpointError(f"checkpoint {path} cannot be opened: {e}") from e
    with f:
        if _text(f.attrs.get("format", "")) != FORMAT:
            raise CheckpointError(
                f"checkpoint {path} is an HDF5 file but not a resnet-train checkpoint "
                f"(no format = {FORMAT} attribute)")
        if int(f.attrs.get("complete", 0)) != 1:
            raise CheckpointError(f"checkpoint {path} is incomplete: its write was interrupted; use an earlier one")
        version = int(f.attrs.get("format_version", 0))
        if not 2 <= version <= FORMAT_VERSION:
            raise CheckpointError(
                f"checkpoint {path} has format version {version}; this tool reads version 2 to {FORMAT_VERSION}")
        if "model" not in f:
            raise CheckpointError(f"checkpoint {path} has no /model group")
        attrs = {k: (_text(v) if isinstance(v, (bytes, str)) else v.item() if hasattr(v, "item") else v)
                 for k, v in f.attrs.items()}
        tensors = {}
        f["model"].visititems(lambda name, obj: tensors.__setitem__(name, obj[()])
                              if isinstance(obj, h5py.Dataset) else None)
        classes = [_text(c) for c in f["classes"][()]] if "classes" in f else None
    return attrs, tensors, classes


def _set_string_attr(obj, name, value):
    """A fixed-length UTF-8 string attribute, as the C++ writer makes them.

    Not h5py's default (variable-length) for str: resnet-train's reader
    (trainer/checkpoint/h5_io.cpp) reads variable-length strings as ASCII,
    which HDF5 refuses to convert from UTF-8.
    """
    data = value.encode("utf-8")
    obj.attrs.create(name, np.array(data, dtype=f"S{max(1, len(data))}"),
                     dtype=h5py.string_dtype("utf-8", max(1, len(data))))


def write_weights_only(path, tensors, arch, num_classes, class_names=None, image_size=224,
                       program_version="import_torch.py"):
    """Writes a weights-only checkpoint (has_optimizer_state = 0, step 0).

    tensors: {name: numpy array} in torchvision names; float arrays are stored
    as fp32, num_batches_tracked as 0-d int64. Written under a hidden
    temporary name in the same directory, marked complete last, then renamed.
    """
    final = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(final), "." + os.path.basename(final) + ".tmp")
    config = f"[model]\narch = {arch}\nnum_classes = {num_classes}\n\n[data]\nimage_size = {image_size}\n"
    try:
        with h5py.File(tmp, "w") as f:
            for name, value in tensors.items():
                if name.endswith(".num_batches_tracked"):
                    f.create_dataset("model/" + name, data=np.int64(value))
                else:
                    f.create_dataset("model/" + name, data=np.ascontiguousarray(value, dtype="<f4"))
            if class_names:
                f.create_dataset("classes", data=class_names, dtype=h5py.string_dtype("utf-8"))
            ints = dict(format_version=FORMAT_VERSION, num_classes=num_classes, step=0, epoch=0, epoch_sample=0,
                        epoch_size=0, world_size=1, batch_size=0, has_optimizer_state=0)
            floats = dict(epoch_position=0.0, lr=0.0, base_lr=0.0)
            strings = dict(format=FORMAT, arch=arch, lr_schedule="", seed="0", program_version=program_version,
                           rng="", config=config)
            for k, v in ints.items():
                f.attrs[k] = np.int64(v)
            for k, v in floats.items():
                f.attrs[k] = np.float64(v)
            for k, v in strings.items():
                _set_string_attr(f, k, v)
            f.flush()
            f.attrs["complete"] = np.int64(1)  # last: a file without it was cut short
        os.replace(tmp, final)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
