#!/usr/bin/env bash
# Seeds the fuzz corpora with the packets and streams captured from live Go memberlist peers.
set -euo pipefail
cd "$(dirname "$0")"
python3 - <<'PY'
import json, os
vectors = json.load(open("../memberlist-proto/tests/data/wire-vectors.json"))
for v in vectors:
    kind = "packet" if v["dir"].startswith("udp") else "stream"
    targets = [kind, "inspect", "message", "compound"] if kind == "packet" else [kind, "inspect"]
    for t in targets:
        os.makedirs(f"corpus/{t}", exist_ok=True)
        open(f"corpus/{t}/{v['id']}", "wb").write(bytes.fromhex(v["hex"]))
PY
echo "seeded fuzz/corpus/ from memberlist-proto/tests/data/wire-vectors.json"
