"""Asset checks. All are blocking: a failure shows in the UI, stops what is downstream and fails the run.

clean_reviews: no HTML left, both labels present in every split within LABEL_BALANCE_MIN, no test review whose
text is also a train review. champion_deployment: job 5's schema and behavioural checks against the live MLFlask.
"""

import re

import dagster as dg
import pandas as pd

from mlplatform.data.cleaning import overlap
from mlplatform.data.lake import SPLITS, read_dataset
from mlplatform.orchestration.assets import deployed_name
from mlplatform.orchestration.resources import LakeResource, MLFlaskResource, MLflowResource
from mlplatform.serving.behaviour import check_interface

HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>")


def rows_with_html(frame: pd.DataFrame) -> pd.Series:
    return frame["text"].str.contains(HTML_TAG, regex=True)


def label_shares(frame: pd.DataFrame) -> dict[str, float]:
    counts = frame["label"].value_counts()
    return {str(label): round(float(counts.get(label, 0)) / max(len(frame), 1), 4) for label in (0, 1)}


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec("no_html", asset="clean_reviews", blocking=True, description="no HTML tag in any text"),
        dg.AssetCheckSpec(
            "label_balance", asset="clean_reviews", blocking=True, description="each label's share ≥ LABEL_BALANCE_MIN"
        ),
        dg.AssetCheckSpec(
            "no_train_test_overlap", asset="clean_reviews", blocking=True, description="no test text is a train text"
        ),
    ],
)
def clean_reviews_checks(lake: LakeResource):
    """Read clean/ once and check it three ways."""
    settings = lake.settings()
    _, frames = read_dataset(lake.open(), "clean")
    html = {split: rows_with_html(frames[split]) for split in SPLITS}
    examples = [text[:120] for split in SPLITS for text in frames[split]["text"][html[split]].head(3)]
    yield dg.AssetCheckResult(
        check_name="no_html",
        passed=not any(flags.any() for flags in html.values()),
        metadata={f"{split}_rows_with_html": int(flags.sum()) for split, flags in html.items()}
        | {"examples": dg.MetadataValue.json(examples)},
    )
    shares = {split: label_shares(frames[split]) for split in SPLITS}
    smallest = min(min(s.values()) for s in shares.values())
    yield dg.AssetCheckResult(
        check_name="label_balance",
        passed=smallest >= settings.label_balance_min,
        metadata={
            "label_shares": dg.MetadataValue.json(shares),
            "smallest_share": smallest,
            "bound": settings.label_balance_min,
        },
    )
    shared = overlap(frames["train"], frames["test"])
    yield dg.AssetCheckResult(
        check_name="no_train_test_overlap",
        passed=shared == 0,
        metadata={"test_texts_also_in_train": shared, "test_rows": len(frames["test"])},
    )


@dg.asset_check(
    asset="champion_deployment",
    blocking=True,
    description="job 5's behavioural checks (obvious reviews, title swap) against the live MLFlask",
)
def behaviour(
    context: dg.AssetCheckExecutionContext, mlflow: MLflowResource, mlflask: MLFlaskResource
) -> dg.AssetCheckResult:
    name = deployed_name(context, mlflow)
    checks = check_interface(mlflask.client(), name, texts=[]).checks
    rows = [
        dg.TableRecord({"result": "PASS" if c.passed else "FAIL", "check": c.name, "detail": c.detail}) for c in checks
    ]
    failed = sum(not c.passed for c in checks)
    return dg.AssetCheckResult(
        passed=failed == 0,
        description=f"{len(checks) - failed} of {len(checks)} behavioural checks passed on {name}",
        metadata={
            "model_name": name,
            "failed": failed,
            "checks": dg.MetadataValue.table(
                rows,
                schema=dg.TableSchema(columns=[dg.TableColumn(c, "string") for c in ("result", "check", "detail")]),
            ),
        },
    )


CHECKS = [clean_reviews_checks, behaviour]
