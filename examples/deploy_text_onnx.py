"""Sample text from an exported gumbel-text generator with onnxruntime and numpy alone.

    python deploy_text_onnx.py MODEL N
"""
import json
import sys

import numpy as np
import onnxruntime as ort

path, n = sys.argv[1], int(sys.argv[2])
if n < 1:
    sys.exit(f"N must be 1 or more, got {n}")
ort.set_default_logger_severity(4)  # quiet where CUDA is missing: the CPU provider takes over
sess = ort.InferenceSession(path, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
meta = {k[8:]: json.loads(v) for k, v in sess.get_modelmeta().custom_metadata_map.items() if k.startswith("gancore.")}
if meta.get("vocab") is None:
    sys.exit(f"{path} is not a gancore text generator (no vocabulary in its metadata); for images use deploy_onnx.py")
shapes = {spec["name"]: (n, *spec["shape"]) for spec in meta["inputs"]}
rng = np.random.default_rng(0)
ids, logits = sess.run(None, {"noise": rng.standard_normal(shapes["noise"], dtype=np.float32),
                              "gumbel": rng.random(shapes["gumbel"], dtype=np.float32)})  # U[0, 1): Gumbel-max noise
vocab, sep = meta["vocab"], " " if meta["output"]["level"] == "word" else ""
for row in ids.tolist():  # a sequence ends at its first id 0, <eos>
    print(sep.join(vocab[i] for i in row[: row.index(0) if 0 in row else len(row)]))
