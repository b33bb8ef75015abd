import pandas as pd
import pytest

from mlplatform.data.cleaning import clean_frame, clean_text, clean_texts, overlap


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("Great film.<br /><br />Loved it", "Great film. Loved it"),
        ("end.<br/>Next<BR>line", "end. Next line"),
        ("Tom &amp; Jerry &quot;rock&quot; &#39;n&#39; roll", "Tom & Jerry \"rock\" 'n' roll"),
        ("<i>Really</i>   <b>good</b>\n\n film", "Really good film"),
        ("plain text, no markup", "plain text, no markup"),
        ("<br /><br />", ""),
    ],
)
def test_clean_text(raw, clean):
    assert clean_text(raw) == clean
    assert "br" not in clean_text(raw).replace("Jerry", "")


def test_parallel_cleaning_matches_serial():
    texts = [f"Row {i}<br />with &amp; <i>markup</i>" for i in range(6000)]
    assert clean_texts(texts, processes=2) == clean_texts(texts, processes=1)


def test_quarantine_keeps_empty_and_bad_label_rows_with_a_reason():
    frame = pd.DataFrame(
        {"id": ["a", "b", "c", "d"], "text": ["good", "<br />", "bad", "ok"], "label": [1, 0, "x", None]}
    )
    kept, quarantined = clean_frame(frame, "train")
    assert kept["id"].tolist() == ["a"]
    assert dict(zip(quarantined["id"], quarantined["reason"], strict=True)) == {
        "b": "empty_text",
        "c": "invalid_label",
        "d": "invalid_label",
    }
    assert set(quarantined["split"]) == {"train"}


def test_overlap_counts_identical_texts():
    train = pd.DataFrame({"text": ["a", "b", "c"]})
    test = pd.DataFrame({"text": ["b", "c", "d", "b"]})
    assert overlap(train, test) == 3
