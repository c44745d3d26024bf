#!/usr/bin/env python3
"""Reads a muon4j optimizer state file (format version 3, safetensors) and prints what it holds.

Lists the step counts, every parameter's route, shape, rule and buffers, every rule's stages and
settings, and every tensor's name, dtype and shape; checks both CRC-32s of the metadata
("data_crc32" over the bytes after the header, "metadata_crc32" over the other metadata entries as
one compact JSON object with sorted keys) and that the tensors are exactly the buffers listed.

The tensors are read with Hugging Face's `safetensors` package when it is installed (numpy arrays,
or torch tensors with --torch), else with the standard library alone (struct and json).

Usage: python3 scripts/read-optimizer-state.py [--torch] FILE
Exit status 0 when the file is a consistent state file, 1 otherwise.
"""
import json
import struct
import sys
import zlib


def crc_hex(data):
    return "%08x" % (zlib.crc32(data) & 0xFFFFFFFF)


def read_plain(raw, header_size):
    """Tensor name -> (dtype, shape, number of floats) from the header alone."""
    header = json.loads(raw[8:8 + header_size].decode("utf-8"))
    header.pop("__metadata__", None)
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        count = 1
        for d in info["shape"]:
            count *= d
        assert info["dtype"] != "F32" or end - begin == 4 * count, "size of " + name
        values = struct.unpack("<%df" % count, raw[8 + header_size + begin:8 + header_size + end])
        tensors[name] = (info["dtype"], list(info["shape"]), values)
    return tensors


def read_with_safetensors(path, framework):
    from safetensors import safe_open
    tensors = {}
    with safe_open(path, framework=framework) as f:
        metadata = f.metadata()
        for name in f.keys():
            t = f.get_tensor(name)
            tensors[name] = (str(t.dtype), list(t.shape), t)
    return metadata, tensors


def main(argv):
    framework = "pt" if "--torch" in argv else "numpy"
    paths = [a for a in argv[1:] if not a.startswith("--")]
    if len(paths) != 1:
        print(__doc__.strip().splitlines()[-2], file=sys.stderr)
        return 2
    path = paths[0]
    with open(path, "rb") as f:
        raw = f.read()
    (header_size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + header_size].decode("utf-8"))
    metadata = header.get("__metadata__", {})
    try:
        metadata_st, tensors = read_with_safetensors(path, framework)
        assert metadata_st == metadata, "safetensors reads other metadata"
        reader = "safetensors (" + framework + ")"
    except ImportError:
        tensors = read_plain(raw, header_size)
        reader = "the standard library"

    problems = []
    if metadata.get("format") != "muon4j-optimizer-state":
        problems.append("format is %r, not 'muon4j-optimizer-state'" % metadata.get("format"))
    data_crc = crc_hex(raw[8 + header_size:])
    others = {k: v for k, v in metadata.items() if k not in ("data_crc32", "metadata_crc32")}
    metadata_crc = crc_hex(json.dumps(dict(sorted(others.items())), separators=(",", ":")).encode("utf-8"))
    for key, actual in (("data_crc32", data_crc), ("metadata_crc32", metadata_crc)):
        if metadata.get(key) != actual:
            problems.append("%s is %r but the bytes give %s" % (key, metadata.get(key), actual))

    print("%s: read with %s" % (path, reader))
    print("format %s version %s, step %s, skipped steps %s" % (metadata.get("format"), metadata.get("format_version"),
                                                             metadata.get("step"), metadata.get("skipped_steps")))
    rules = json.loads(metadata.get("rules", "{}"))
    for name, rule in rules.items():
        print("rule %s (%s):" % (name, rule["family"]))
        for stage in rule["transforms"]:
            print("  %s %s" % (stage["name"], json.dumps(stage["settings"], sort_keys=True)))
    parameters = json.loads(metadata.get("parameters", "{}"))
    listed = set()
    for name, p in parameters.items():
        print("parameter %s: route %s, shape %s, rule %s" % (name, p["route"], p["shape"], p.get("rule", "-")))
        for buffer in p["buffers"]:
            tensor = name + "/" + buffer
            listed.add(tensor)
            if tensor not in tensors:
                problems.append("tensor %s is missing" % tensor)
                continue
            dtype, shape, _ = tensors[tensor]
            print("  %s %s %s" % (tensor, dtype, shape))
    for tensor in sorted(set(tensors) - listed):
        problems.append("tensor %s is no listed buffer" % tensor)
    print("%d tensors, %d parameters, %d rules" % (len(tensors), len(parameters), len(rules)))
    for p in problems:
        print("problem: " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
