"""The Python snippets of the field-model section of docs/models.md run as written."""

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "models.md"


def test_field_model_snippets_run():
    text = DOCS.read_text()
    section = text[text.index("## Field models"):]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) >= 2
    for block in blocks:
        exec(block, {})
