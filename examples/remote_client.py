#!/usr/bin/env python3
"""Drives an hpo study from another machine over HTTP, with Python's standard library
only: ask for a trial, train (here a synthetic learning curve), report each epoch
and stop when the study's pruner says so, tell the outcome. Repeats until the
study's budget is met.

    python3 examples/remote_client.py http://HOST:8080 studies/external-quadratic.toml [TOKEN]

The study file must say `[objective] kind = "external"`; the first ask creates the
study on the server from it. With a tokens file on the server, pass a write token.
"""

import json
import math
import sys
import tomllib
import urllib.error
import urllib.request


def call(base, path, body, token):
    """POSTs `body` (bytes) to `base + path`; returns (status, JSON answer)."""
    request = urllib.request.Request(base + path, data=body, method="POST")
    if token:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def train(params, epochs):
    """A stand-in for a training run: a loss curve falling towards a value that
    depends on the parameters (the best near x = 1 and lr = 0.01)."""
    final = (params["x"] - 1.0) ** 2 + 0.1 * (math.log10(params["lr"]) + 2.0) ** 2
    final += 0.05 * params.get("layers", 1)
    for epoch in range(1, epochs + 1):
        yield epoch, final + 1.0 / epoch


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    base, study_path = sys.argv[1].rstrip("/"), sys.argv[2]
    token = sys.argv[3] if len(sys.argv) == 4 else None
    with open(study_path, "rb") as f:
        study_file = f.read()
    name = tomllib.loads(study_file.decode())["study"]["name"]
    study = "/api/v1/studies/" + name
    counts = {"complete": 0, "pruned": 0}
    while True:
        status, asked = call(base, study + "/ask", study_file, token)
        if status == 409:  # the budget is met
            break
        if status != 200:
            sys.exit(f"ask: {status} {asked}")
        number, params = asked["trial"], asked["params"]
        pruned, value = False, None
        for epoch, value in train(params, epochs=20):
            body = json.dumps({"step": epoch, "value": value}).encode()
            status, answer = call(base, f"{study}/trials/{number}/steps", body, token)
            if status != 200:
                sys.exit(f"report: {status} {answer}")
            if answer["prune"]:
                pruned = True
                break
        outcome = {"state": "pruned"} if pruned else {"value": value}
        status, told = call(base, f"{study}/trials/{number}/tell", json.dumps(outcome).encode(), token)
        if status != 200:
            sys.exit(f"tell: {status} {told}")
        counts[told["state"]] += 1
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
