"""Sample from an exported gancore generator with onnxruntime and numpy alone: python deploy_onnx.py MODEL N OUT
(a greyscale .pgm, or a colour .ppm for RGB models; for a model of points, such as gan2d's, a CSV file)"""
import json
import sys

import numpy as np
import onnxruntime as ort

path, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if n < 1:
    sys.exit(f"N must be 1 or more, got {n}")
ort.set_default_logger_severity(4)  # quiet where CUDA is missing: the CPU provider takes over, as printed below
sess = ort.InferenceSession(path, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
meta = {k[8:]: json.loads(v) for k, v in sess.get_modelmeta().custom_metadata_map.items() if k.startswith("gancore.")}
if meta.get("kind") != "generator":  # an export folder also holds encoders, classifiers, Q heads
    sys.exit(f"{path} is not a gancore generator ({meta.get('kind', 'no gancore metadata')}); give generator.onnx")
rng, feeds = np.random.default_rng(0), {}
for spec in meta["inputs"]:  # every input's shape and distribution is in the model
    shape = (n, *spec["shape"])
    if spec["distribution"] == "normal":
        feeds[spec["name"]] = rng.standard_normal(shape, dtype=np.float32)
    elif spec["distribution"] == "uniform":
        feeds[spec["name"]] = rng.uniform(spec["low"], spec["high"], shape).astype(np.float32)
    else:
        feeds[spec["name"]] = rng.integers(0, np.array(spec.get("categories", spec["classes"])), shape, dtype=np.int64)
kind = meta["data"]["kind"]  # what the model generates: image, points or sequence (text)
if kind not in ("image", "points"):
    sys.exit(f"{path} generates {kind}, not images or points; for text use deploy_text_onnx.py")
images = sess.run(None, feeds)[0]  # N x C x H x W (points: N x D) in meta["output"]["value_range"]
if kind == "points":
    np.savetxt(out, images, delimiter=",", fmt="%.6g")
    print(f"{n} points from {meta['plugin']} on {sess.get_providers()[0]} -> {out}")
    sys.exit(0)
lo, hi = meta["output"]["value_range"]
pixels = ((images.transpose(0, 2, 3, 1) - lo) / (hi - lo) * 255).clip(0, 255).astype(np.uint8)  # N x H x W x C
strip = np.concatenate(list(pixels), axis=1)  # N images side by side
with open(out, "wb") as f:  # P5: greyscale, P6: RGB
    f.write(b"P%d %d %d 255\n" % (5 if strip.shape[2] == 1 else 6, strip.shape[1], strip.shape[0]) + strip.tobytes())
print(f"{n} samples from {meta['plugin']} on {sess.get_providers()[0]} -> {out}")
