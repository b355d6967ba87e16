"""Count words per line length bucket and write JSON for the next step."""

import json
import pathlib

import six  # installed by the setup phase from requirements.txt

text = "the quick brown fox jumps over the lazy dog " * 20
words = text.split()
buckets: dict[str, int] = {}
for word in words:
    key = str(len(word))
    buckets[key] = buckets.get(key, 0) + 1
out = pathlib.Path("/output/analysis.json")
out.write_text(json.dumps({"words": len(words), "by_length": buckets, "six": six.__version__}, sort_keys=True))
print(f"analysed {len(words)} words")
