"""Runs an exported model in ONNX Runtime (tests/export.rs).

  python onnx_check.py DIR   runs DIR/model.onnx on DIR/sample.json's inputs and
                             prints, as JSON, how its logits and predicted
                             classes compare with hpo's
"""

import json
import sys

import numpy as np
import onnxruntime as ort


def main():
    folder = sys.argv[1]
    with open(f"{folder}/sample.json") as f:
        sample = json.load(f)
    inputs = np.asarray(sample["inputs"], dtype=np.float32)
    ours = np.asarray(sample["logits"], dtype=np.float32)
    session = ort.InferenceSession(f"{folder}/model.onnx", providers=["CPUExecutionProvider"])
    (theirs,) = session.run(["logits"], {"input": inputs})
    labels = np.asarray(sample["labels"])
    print(
        json.dumps(
            {
                "rows": int(inputs.shape[0]),
                "max_abs_diff": float(np.max(np.abs(theirs - ours))),
                "same_class": int(np.sum(np.argmax(theirs, 1) == np.argmax(ours, 1))),
                "accuracy": float(np.mean(np.argmax(theirs, 1) == labels)),
            }
        )
    )


if __name__ == "__main__":
    main()
